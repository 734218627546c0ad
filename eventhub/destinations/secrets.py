"""Webhook signing secrets: made here, encrypted at rest, rotated with an overlap.

A route's secret is stored only encrypted (Fernet: AES-128-CBC with an HMAC-SHA256 tag)
under a key from the environment: ``EVENTHUB["SECRETS_KEYS"]`` (``EVENTHUB_SECRETS_KEYS``),
newest first, or else Django's ``SECRET_KEY`` followed by its ``SECRET_KEY_FALLBACKS``.
The first key encrypts; every key decrypts, so a key is rotated by putting the new one
first, running ``manage.py eventhub_reseal_secrets`` and then dropping the old one.

Rotation keeps the previous secret until an expiry: until then every request carries a
signature by each (Standard Webhooks allows several), so receivers can switch over.
"""

import base64
import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils import timezone

from eventhub.conf import eventhub_settings
from eventhub.destinations.errors import PermanentError

PREFIX = "whsec_"


class SecretUnreadable(PermanentError):
    """A stored secret that none of the configured keys decrypts."""


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form (whsec_ + base64 of 24 random bytes)."""
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _keys() -> tuple[str, ...]:
    configured = tuple(k for k in eventhub_settings.SECRETS_KEYS if k)
    if configured:
        return configured
    return (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ()))


@lru_cache(maxsize=8)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    # Any string may be a key (like SECRET_KEY): HKDF turns each into the 32 bytes Fernet needs.
    def fernet(key: str) -> Fernet:
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"eventhub webhook secrets")
        return Fernet(base64.urlsafe_b64encode(kdf.derive(key.encode())))

    return MultiFernet([fernet(k) for k in keys])


def seal(secret: str) -> str:
    """``secret`` encrypted with the newest key, as stored."""
    return _cipher(_keys()).encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    """The secret in ``sealed``; SecretUnreadable when no configured key opens it."""
    try:
        return _cipher(_keys()).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The route's signing secret cannot be decrypted with the configured keys "
            "(EVENTHUB_SECRETS_KEYS / SECRET_KEY changed without keeping the old key?)."
        ) from None


def reseal(sealed: str) -> str:
    """``sealed`` encrypted again with the newest key (for rotating the encryption key)."""
    if not sealed:
        return sealed
    try:
        return _cipher(_keys()).rotate(sealed.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("A stored secret cannot be decrypted with any configured key.") from None


def sealed_new_secret() -> str:
    """A fresh secret, already encrypted: the default of a new route."""
    return seal(new_secret())


def fingerprint(secret: str) -> str:
    """A short, non-reversible mark of a secret, to tell two apart without showing either."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def signing_secrets(route: Any, *, now: datetime | None = None) -> list[str]:
    """The secrets a request of ``route`` is signed with: the current one, and the previous
    one until its expiry."""
    found = [route.secret]
    expires = route.previous_secret_expires_at
    if route.previous_secret_sealed and expires and expires > (now or timezone.now()):
        found.append(unseal(route.previous_secret_sealed))
    return found


def rotate(route: Any, *, overlap: timedelta, now: datetime | None = None) -> str:
    """Give ``route`` a new secret and return it; the current one keeps signing for ``overlap``.

    A previous secret still in its overlap is dropped: a route holds two secrets at most.
    """
    now = now or timezone.now()
    fresh = new_secret()
    if overlap > timedelta(0):
        route.previous_secret_sealed = route.secret_sealed
        route.previous_secret_expires_at = now + overlap
    else:
        route.previous_secret_sealed, route.previous_secret_expires_at = "", None
    route.secret = fresh
    route.save(
        update_fields=["secret_sealed", "previous_secret_sealed", "previous_secret_expires_at", "updated_at"]
    )
    return fresh


def describe(secrets_in_use: Sequence[str]) -> str:
    """``whsec_…<fingerprint>`` for each secret: what the admin shows instead of the secret."""
    return ", ".join(f"{PREFIX}…{fingerprint(s)}" for s in secrets_in_use)
