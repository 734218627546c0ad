"""API tokens for the ingest API: issue, check, revoke.

A token reads ``eh_<prefix>_<secret>``. The prefix is stored in clear so the row can
be found (and recognised by an operator); the whole token is stored only as a
SHA-256 hash. A fast hash is enough here because the secret has 256 bits of entropy:
there is nothing to guess, unlike a password.
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from eventhub.events import check_patterns, parse_patterns
from eventhub.models import ApiToken, EventType

SCHEME = "eh"
PREFIX_BODY = re.compile(r"[0-9a-f]{8}")


class TokenError(Exception):
    """The request's credentials were refused."""


class MissingToken(TokenError):
    """No ``Authorization: Bearer`` header."""


class WrongToken(TokenError):
    """A token that eventhub never issued (or mistyped)."""


class RevokedToken(TokenError):
    """A token an operator revoked."""


class ExpiredToken(TokenError):
    """A token past its expiry."""


class RateLimited(Exception):
    """The token sent more events this minute than its limit; ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: the row, and the only copy of the token in clear."""

    api_token: ApiToken
    token: str


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh ``(prefix, token)`` pair."""
    prefix = f"{SCHEME}_{secrets.token_hex(4)}"
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def assign_new_token(api_token: ApiToken) -> str:
    """Give an unsaved ApiToken a fresh token (prefix and hash set); returns the token in clear."""
    prefix, token = new_token()
    api_token.prefix = prefix
    api_token.token_hash = hash_token(token)
    return token


def issue_token(
    *,
    name: str,
    event_types: Iterable[EventType | str] = (),
    sources: Iterable[str] = (),
    expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None,
) -> IssuedToken:
    """Create a token allowed to send ``event_types`` (objects or names) from ``sources`` (patterns)."""
    names = [t for t in event_types if isinstance(t, str)]
    objects = [t for t in event_types if not isinstance(t, str)]
    objects += list(EventType.objects.filter(name__in=names))
    allowed_sources = "\n".join(check_patterns("\n".join(sources)))
    with transaction.atomic():
        api_token = ApiToken(
            name=name, allowed_sources=allowed_sources, expires_at=expires_at,
            rate_limit_per_minute=rate_limit_per_minute,
        )  # fmt: skip
        token = assign_new_token(api_token)
        api_token.save()
        api_token.event_types.set(objects)
    return IssuedToken(api_token=api_token, token=token)


def revoke(*, api_token: ApiToken) -> None:
    """Revoke a token: from now on it is refused with 403."""
    if api_token.revoked_at is None:
        api_token.revoked_at = timezone.now()
        ApiToken.objects.filter(pk=api_token.pk, revoked_at=None).update(revoked_at=api_token.revoked_at)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; MissingToken otherwise."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken("Send the API token as 'Authorization: Bearer <token>'.")
    return token.strip()


def authenticate(authorization: str | None) -> ApiToken:
    """The ApiToken an Authorization header carries; raises a TokenError subclass when refused."""
    token = bearer_token(authorization)
    parts = token.split("_", 2)
    api_token = None
    if len(parts) == 3 and parts[0] == SCHEME and PREFIX_BODY.fullmatch(parts[1]):
        api_token = ApiToken.objects.filter(prefix=f"{SCHEME}_{parts[1]}").first()
    # Compare in constant time, and hash even when no row matched, so timing tells nothing.
    expected = api_token.token_hash if api_token else hash_token("")
    if not hmac.compare_digest(expected, hash_token(token)) or api_token is None:
        raise WrongToken("The API token is not valid.")
    if api_token.revoked:
        raise RevokedToken(f"The API token {api_token.prefix}… was revoked.")
    if api_token.expires_at is not None and api_token.expires_at <= timezone.now():
        raise ExpiredToken(
            f"The API token {api_token.prefix}… expired at {api_token.expires_at:%Y-%m-%d %H:%M} UTC."
        )
    return api_token


def record_use(api_token: ApiToken, *, events: int, now: datetime | None = None) -> None:
    """Count ``events`` against the token's per-minute limit and note its use; RateLimited past it.

    One UPDATE on the token's row, whichever web process runs it: the count is shared by all
    of them. A refused request counts nothing. Windows are calendar minutes.
    """
    now = now or timezone.now()
    window = now.replace(second=0, microsecond=0)
    limit = api_token.rate_limit_per_minute
    row = ApiToken.objects.filter(pk=api_token.pk)
    if limit is not None:
        fits = (
            Q(rate_window_start__isnull=True)
            | ~Q(rate_window_start=window)
            | Q(rate_window_count__lte=limit - events)
        )
        row = row.filter(fits) if events <= limit else row.none()
    updated = row.update(
        rate_window_count=Case(
            When(rate_window_start=window, then=F("rate_window_count") + events), default=Value(events)
        ),
        rate_window_start=window,
        last_used_at=now,
    )
    if not updated:
        retry_after = max(1, 60 - now.second)
        raise RateLimited(
            f"This token may send {limit} events a minute; {events} more would exceed it.",
            retry_after=retry_after if events <= limit else 60,
        )


def allowed_type_names(api_token: ApiToken) -> set[str]:
    """Names of the event types a token may send."""
    return set(api_token.event_types.values_list("name", flat=True))


def allowed_source_patterns(api_token: ApiToken) -> list[str]:
    """The token's allowed-sources patterns."""
    return parse_patterns(api_token.allowed_sources)
