"""eventhub.destinations.signing: Standard Webhooks signatures, checked by the reference library."""

import base64
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from eventhub.destinations.signing import SignatureError, signed_headers, verify
from eventhub.models import new_webhook_secret

BODY = b'{"type": "order.paid", "data": {"n": 1}}'


def test_the_standard_webhooks_library_verifies_eventhubs_signature():
    secret = new_webhook_secret()
    headers = signed_headers(secrets=[secret], msg_id="msg_1", body=BODY)
    assert Webhook(secret).verify(BODY, headers) == {"type": "order.paid", "data": {"n": 1}}


def test_a_tampered_body_or_another_secret_fails_the_reference_check_too():
    secret = new_webhook_secret()
    headers = signed_headers(secrets=[secret], msg_id="msg_1", body=BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(BODY, headers)


def test_verify_accepts_a_good_signature_among_several_and_refuses_old_or_missing_ones():
    secret = new_webhook_secret()
    headers = signed_headers(secrets=[secret], msg_id="msg_2", body=BODY)
    other = "v1," + base64.b64encode(b"x" * 32).decode()
    verify(
        secret=secret,
        headers={**headers, "webhook-signature": f"{other} {headers['webhook-signature']}"},
        body=BODY,
    )
    stale = signed_headers(secrets=[secret], msg_id="msg_2", body=BODY, timestamp=int(time.time()) - 3600)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(secret=secret, headers=stale, body=BODY)
    with pytest.raises(SignatureError, match="missing"):
        verify(secret=secret, headers={"webhook-id": "msg_2"}, body=BODY)


def test_a_secret_typed_by_hand_signs_with_its_own_bytes():
    headers = signed_headers(secrets=["not base64!"], msg_id="msg_3", body=BODY)
    verify(secret="not base64!", headers=headers, body=BODY)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(secret="another one", headers=headers, body=BODY)
