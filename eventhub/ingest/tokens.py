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

from django.db import transaction
from django.utils import timezone

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


def issue_token(*, name: str, event_types: Iterable[EventType | str] = ()) -> IssuedToken:
    """Create a token allowed to send ``event_types`` (objects or names)."""
    names = [t for t in event_types if isinstance(t, str)]
    objects = [t for t in event_types if not isinstance(t, str)]
    objects += list(EventType.objects.filter(name__in=names))
    with transaction.atomic():
        api_token = ApiToken(name=name)
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
    return api_token


def allowed_type_names(api_token: ApiToken) -> set[str]:
    """Names of the event types a token may send."""
    return set(api_token.event_types.values_list("name", flat=True))
