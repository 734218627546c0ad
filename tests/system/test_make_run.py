"""`make run` as a new user runs it: the README's first command, on a fresh SQLite database.

The app comes up on the port asked for, `/` and the admin lead to the dashboard, the
demo has customers to order with, every log line is printed once, the relay beside
the server delivers what a killed process left behind, and Ctrl-C stops everything.
"""

import contextlib
import http.client
import http.cookiejar
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.private_postgres import free_port
from tests.support.process import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

KILLED_AFTER_COMMIT = """
import os, signal
from django.db import transaction
from eventhub import emit
with transaction.atomic():
    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    emit("customer.deleted", data={"id": 99, "name": "Left Behind"}, subject="customer/99")
"""


@dataclass
class Run:
    base: str
    port: int
    env: dict
    log: Path
    database: Path

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def make_run(tmp_path):
    """`make run PORT=<free port>` in its own process group, on a database of its own."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "BROKER_URL")}
    database = tmp_path / "db.sqlite3"
    env.update(DATABASE_URL=f"sqlite:///{database}", PYTHONUNBUFFERED="1",
               EVENTHUB_RELAY_INTERVAL_SECONDS="1", EVENTHUB_RELAY_AFTER_SECONDS="1")  # fmt: skip
    log = tmp_path / "make-run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["make", "run", f"PORT={port}", f"VENV={sys.prefix}"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    run = Run(f"http://127.0.0.1:{port}", port, env, log, database)
    try:
        _wait_until_serving(run, proc)
        yield run
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        proc.wait(30)
        # The server and the relay are gone too (the relay may take a moment to hand work back).
        deadline = time.monotonic() + 20
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = subprocess.run(["ps", "-o", "pid,cmd", "--no-headers", "-g", str(proc.pid)],
                              capture_output=True, text=True).stdout  # fmt: skip
        assert not _group_alive(proc.pid), f"still running after Ctrl-C:\n{left}\n{run.output()}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_until_serving(run: Run, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, run.output()
        try:
            urllib.request.urlopen(run.base + "/admin/login/", timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"make run did not serve within 180 s:\n{run.output()}")


def get_raw(run: Run, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", run.port, timeout=10)
    connection.request("GET", path)
    return connection.getresponse()


def admin_session(run: Run) -> urllib.request.OpenerDirector:
    """An opener signed in as the local superuser admin/admin."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(run.base + "/admin/login/").read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    form = {"username": "admin", "password": "admin", "csrfmiddlewaretoken": token, "next": "/admin/"}
    request = urllib.request.Request(
        run.base + "/admin/login/?next=/admin/", data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": run.base + "/admin/login/"},
    )  # fmt: skip
    assert opener.open(request).geturl().endswith("/admin/")
    return opener


def test_make_run_serves_the_walkthrough_and_stops_cleanly(make_run):
    run = make_run
    assert f"Starting development server at http://127.0.0.1:{run.port}/" in run.output()

    # / and the admin's "View site" lead to the dashboard, and the admin index links it.
    root = get_raw(run, "/")
    assert (root.status, root.getheader("Location")) == (302, "/eventhub/")
    admin = admin_session(run)
    index = admin.open(run.base + "/admin/").read().decode()
    assert '<a href="/eventhub/">View site</a>' in index
    assert re.search(r'id="eventhub-dashboard".*?<a href="/eventhub/">Dashboard</a>', index, re.S)

    # Step 1 of the shop walkthrough: an order needs a customer, and the demo has some.
    order_form = admin.open(run.base + "/admin/shop/order/add/").read().decode()
    assert "Ada Lovelace" in order_form and "Mug" in order_form

    # Each log line once.
    assert get_raw(run, "/no-such-page").status == 404
    time.sleep(0.5)
    assert run.output().count("Not Found: /no-such-page") == 1, run.output()

    # A process killed between its commit and its send leaves a pending delivery: the relay sends it.
    killed = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", KILLED_AFTER_COMMIT],
        cwd=ROOT, env=run.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _delivery_status(run, "customer/99") in ("pending", "queued", "running", "succeeded")
    deadline = time.monotonic() + 30
    while _delivery_status(run, "customer/99") != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _delivery_status(run, "customer/99") == "succeeded", run.output()


def _delivery_status(run: Run, subject: str) -> str | None:
    with sqlite3.connect(run.database, timeout=30) as db:
        row = db.execute(
            "SELECT d.status FROM eventhub_delivery d JOIN eventhub_event e ON e.id = d.event_id "
            "WHERE e.subject = ?",
            (subject,),
        ).fetchone()
    return row[0] if row else None


def test_make_run_installs_only_what_the_app_needs_and_takes_a_port(tmp_path):
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=8123", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "pip install -qq -e .\n" in dry.stdout and "[test]" not in dry.stdout
    assert "runserver 127.0.0.1:8123" in dry.stdout and "eventhub_relay" in dry.stdout


def test_make_run_says_which_python_it_needs(tmp_path):
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\nexit 1\n")  # answers the version check as an old interpreter would
    old.chmod(0o755)
    done = subprocess.run(
        ["make", "run", f"PY={old}", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0
    assert "eventhub needs Python 3.11 or newer" in done.stderr
