"""Route targets are checked when a route is saved (issue 14, item 3): no internal addresses,
no credentials in URLs, no exchange of RabbitMQ's own."""

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import override_settings

from eventhub.models import EventType, Route

pytestmark = pytest.mark.django_db


def clean(kind: str, target: str) -> None:
    event_type, _ = EventType.objects.get_or_create(name="order.paid")
    Route(name="r", event_type=event_type, destination_kind=kind, target=target).full_clean()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local address"),
        ("http://127.0.0.1:8000/admin/", "loopback address"),
        ("http://localhost/hook", "loopback address"),
        ("http://api.localhost/hook", "loopback address"),
        ("http://[::1]/hook", "loopback address"),
        ("http://10.1.2.3/hook", "private address"),
        ("http://192.168.0.10/hook", "private address"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback address"),
        ("http://0.0.0.0/hook", "unspecified address"),
        ("http://224.0.0.1/hook", "multicast address"),
        ("https://user:pw@example.com/hook", "no credentials"),
        ("ftp://example.com/hook", "http(s):// URL or consul://"),
        ("https:///hook", "names no host"),
        ("https://example.com:99999/hook", "port is not valid"),
        ("consul://bad name/hook", "not a Consul service name"),
    ],
)
def test_bad_webhook_targets_are_refused(target, message):
    no_internal = override_settings(EVENTHUB={**settings.EVENTHUB, "WEBHOOK_ALLOWED_NETWORKS": []})
    with no_internal, pytest.raises(ValidationError) as info:
        clean("webhook", target)
    assert message in info.value.message_dict["target"][0]


@pytest.mark.parametrize(
    "target", ["https://billing.example.com/hooks/eventhub", "consul://billing/hooks/in"]
)
def test_good_webhook_targets_pass(target):
    clean("webhook", target)


def test_the_allow_list_admits_a_private_network():
    with override_settings(EVENTHUB={**settings.EVENTHUB, "WEBHOOK_ALLOWED_NETWORKS": ["10.20.0.0/16"]}):
        clean("webhook", "http://10.20.1.5:8080/hook")
        with pytest.raises(ValidationError):
            clean("webhook", "http://10.21.1.5:8080/hook")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/eventhub", "An AMQP target is an exchange name"),
        ("amq.default/eventhub", "RabbitMQ's own"),
        ("amq.rabbitmq.trace", "RabbitMQ's own"),
        ("orders here", "An AMQP target is an exchange name"),
        ("orders/" + "k" * 300, "at most 255 bytes"),
    ],
)
def test_bad_amqp_targets_are_refused(target, message):
    with pytest.raises(ValidationError) as info:
        clean("amqp", target)
    assert message in info.value.message_dict["target"][0]


def test_good_amqp_targets_pass():
    clean("amqp", "orders/billing.all")
