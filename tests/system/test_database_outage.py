"""The ingest API while its database is down: 503 problem+json with Retry-After, then back to normal.

Runs ``manage.py runserver`` against a PostgreSQL server of the test's own
(tests/support/private_postgres.py), which the test stops and starts again; the
shared database is never touched.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.support.private_postgres import PrivatePostgres, free_port, unavailable_reason
from tests.support.process import ROOT, run_manage

pytestmark = [pytest.mark.faults, pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason())]

ISSUE_TOKEN = """
from eventhub.ingest.tokens import issue_token
from eventhub.models import EventType
EventType.objects.create(name="order.paid")
print(issue_token(name="outage test", event_types=["order.paid"], sources=["/outage-test"]).token)
"""


@pytest.fixture
def server(tmp_path):
    """runserver on a private PostgreSQL: yields (base URL, API token, the PostgreSQL server)."""
    postgres = PrivatePostgres().init()
    try:
        postgres.create_database("eventhub")
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "BROKER_URL": "",
               "DATABASE_URL": postgres.url("eventhub"), "PYTHONUNBUFFERED": "1"}  # fmt: skip
        for args in (["migrate", "--no-input"], ["shell", "-c", ISSUE_TOKEN]):
            done = run_manage(*args, env=env, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
        token = done.stdout.strip().splitlines()[-1]
        port = free_port()
        log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        _wait_until_serving(base, proc, tmp_path / "server.log")
        yield base, token, postgres
        proc.terminate()
        proc.wait(10)
    finally:
        postgres.remove()


def _wait_until_serving(base: str, proc: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(base + "/api/openapi.json", timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"runserver did not answer: {log.read_text()}")


def send(base: str, token: str, event_id: str) -> tuple[int, dict, dict]:
    """POST one structured CloudEvent; (status, headers, JSON body)."""
    event = {"specversion": "1.0", "id": event_id, "source": "/outage-test", "type": "order.paid", "data": {}}
    request = urllib.request.Request(
        base + "/api/events",
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/cloudevents+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_while_the_database_is_down_ingest_answers_503_problem_with_retry_after(server):
    base, token, postgres = server
    assert send(base, token, "before")[0] == 202

    postgres.stop()
    missed = f"during-{uuid.uuid4().hex[:6]}"
    # The first request finds its kept connection cut, the second cannot connect: both are a 503.
    for _ in range(2):
        status, headers, body = send(base, token, missed)
        assert status == 503, body
        assert headers["Content-Type"] == "application/problem+json"
        assert headers["Retry-After"] == "5"
        assert body["type"] == "urn:eventhub:problem:database-unavailable" and body["status"] == 503
        assert "Send them again with the same ids" in body["detail"]

    postgres.start()
    status, _, body = send(base, token, missed)
    assert (status, body["duplicate"]) == (202, False)  # not stored during the outage: stored now
    assert send(base, token, missed)[:1] == (200,)  # and recognised when sent again
    assert send(base, token, "before")[2]["duplicate"] is True  # what was stored before survived
