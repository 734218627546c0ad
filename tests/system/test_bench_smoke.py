"""The benchmark harness runs end to end (tiny N) and prints its one table; speed is not asserted."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from bench.report import ROWS
from tests.conftest import RABBITMQ_URL

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


def database_url() -> str:
    """The URL of the test database, so the harness and its workers use it too."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.skipif(connection.vendor == "sqlite", reason="the benchmark measures PostgreSQL")
def test_quick_bench_prints_the_table_with_every_row_and_writes_json(tmp_path):
    argv = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--n",
        "40",
        "--n-single",
        "20",
        "--batch",
        "15",
        "--rate",
        "20",
        "--seconds",
        "1",
        "--history",
        "200",
        "--processes",
        "1",
        "--threads",
        "2",
        "--out",
        str(tmp_path),
    ]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL=database_url(), BROKER_URL=RABBITMQ_URL)
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)

    assert done.returncode == 0, done.stdout + done.stderr
    for label, *_ in ROWS:
        row = next((line for line in done.stdout.splitlines() if line.startswith(f"| {label} ")), None)
        assert row is not None, f"row {label!r} missing from:\n{done.stdout}"
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert "-" not in cells[2:], f"row {label!r} lacks a figure: {row}"
    assert "raw Dramatiq" in done.stdout and "eventhub / raw" in done.stdout
    # Never silent for minutes: each phase says on stderr when it starts and ends, with count and rate.
    for phase in (
        "raw Dramatiq: send",
        "raw Dramatiq: workers drain the queue",
        "eventhub: emit one at a time",
        "eventhub: emit in batches of 15",
        "eventhub: workers deliver",
        "eventhub: latency at a fixed rate",
    ):
        assert f"[bench] {phase}: started" in done.stderr, done.stderr
        ended = rf"\[bench\] {phase}: done: [\d,]+(/[\d,]+)? \w+, [\d,]+/s"
        assert re.search(ended, done.stderr), done.stderr
    (result,) = tmp_path.glob("bench-*.json")
    document = json.loads(result.read_text())
    assert len(document["table"]) == len(ROWS) and len(document["targets"]) == 3
