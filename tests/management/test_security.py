"""Commands that must not open doors (issue 14, item 16): ensure_admin only with DEBUG on, the worker's
Prometheus exporter on loopback unless told otherwise."""

import os

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from eventhub.management.commands import eventhub_worker


@pytest.mark.django_db
def test_ensure_admin_refuses_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG=true"):
        call_command("ensure_admin")
    assert not User.objects.exists()
    settings.DEBUG = True
    call_command("ensure_admin", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert User.objects.get().is_superuser


@pytest.fixture
def exec_env(monkeypatch, stub_broker, db):
    """Run eventhub_worker up to its exec, and keep the environment it would hand to Dramatiq.

    (The command reads the routes at start: their retry windows against the retention.)"""
    environ = {k: v for k, v in os.environ.items() if k != "dramatiq_prom_host"}
    monkeypatch.setattr(os, "environ", environ)  # the command's changes stay in this test
    monkeypatch.setattr(eventhub_worker.broker, "is_embedded", lambda: False)
    monkeypatch.setattr(eventhub_worker.os, "execv", lambda path, argv: None)
    return environ


def test_the_prometheus_exporter_listens_on_loopback_by_default(exec_env):
    call_command("eventhub_worker", "--prometheus", "--queues", "q")
    assert exec_env["dramatiq_prom_host"] == "127.0.0.1"


def test_the_prometheus_exporter_listens_where_it_is_told(exec_env):
    call_command("eventhub_worker", "--prometheus", "--prometheus-host", "0.0.0.0", "--queues", "q")
    assert exec_env["dramatiq_prom_host"] == "0.0.0.0"
