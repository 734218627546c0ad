"""Fixtures of the end-to-end tests: the browser page (tests/support/browser.py), worker processes."""

import contextlib
import os
import signal
import subprocess

import pytest

from tests.support.browser import page  # noqa: F401 - the fixture, for the browser tests
from tests.support.process import command_env, start_worker


@pytest.fixture
def workers(rabbitmq_broker, queue_name, tmp_path):
    """``manage.py eventhub_worker`` with two worker processes of four threads on this test's queue."""
    log = tmp_path / "workers.log"
    proc = start_worker(
        queue_name,
        "--processes",
        "2",
        threads=4,
        env=command_env(),
        stdout=open(log, "w"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield proc
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
