"""Standard Webhooks signatures: HMAC-SHA256 over "<id>.<timestamp>.<body>".

Receivers verify with the route's secret (``whsec_`` + base64 key), exactly as the
Standard Webhooks libraries do, so any of them can check eventhub's requests.
"""

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence


class SignatureError(ValueError):
    """A webhook request's signature does not verify."""


def _key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        # Secrets typed by hand need not be base64; use their bytes as the key.
        return raw.encode()


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one request."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    *, secrets: Sequence[str], msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The webhook-id, webhook-timestamp and webhook-signature headers for ``body``.

    One signature per secret, space-separated (a rotation's overlap signs with both).
    """
    timestamp = int(time.time()) if timestamp is None else timestamp
    signatures = " ".join(
        signature(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body) for secret in secrets
    )
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures}


def verify(*, secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> None:
    """Raise SignatureError unless ``headers`` carry a valid, recent signature of ``body``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, stamp, sigs = (lowered[h] for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
        timestamp = int(stamp)
    except (KeyError, ValueError) as exc:
        raise SignatureError("missing or malformed webhook headers") from exc
    if abs(time.time() - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance")
    expected = signature(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
    if not any(hmac.compare_digest(expected, s) for s in sigs.split()):
        raise SignatureError("no signature matches")
