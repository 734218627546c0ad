"""Running eventhub's own commands as real processes against this test's database."""

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

from tests.conftest import RABBITMQ_URL

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """A DATABASE_URL for the test database the current test runs on."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def command_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: same settings, same test database, real RabbitMQ."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=database_url(),
        BROKER_URL=RABBITMQ_URL,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(*args: str, **popen) -> subprocess.Popen:
    """Start ``manage.py <args>`` as a child process."""
    popen.setdefault("env", command_env())
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, **popen)


def run_manage(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``manage.py <args>`` to completion, capturing its output."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env or command_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_worker(queue: str, *extra: str, threads: int = 2, relay: bool = False, **popen) -> subprocess.Popen:
    """Start ``manage.py eventhub_worker`` (one process) on ``queue``; ``extra`` adds options."""
    args = ["eventhub_worker", "--queues", queue, "--processes", "1", "--threads", str(threads)]
    return manage(*args, *([] if relay else ["--no-relay"]), *extra, **popen)
