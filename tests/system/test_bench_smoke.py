"""The benchmark harness runs end to end (tiny N, two rounds) and prints its table; speed is not asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from bench.report import rows_for
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
@pytest.mark.timeout(420)  # a quick run takes 2 to 3 minutes on a busy 2-core machine
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
        "--repeat",
        "2",
        "--rates",
        "20,300",
        "--seconds",
        "1",
        "--webhook-n",
        "30",
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
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)

    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = tmp_path.glob("bench-*.json")
    document = json.loads(result.read_text())
    rows = rows_for(document["config"])
    assert any(label.startswith("webhooks, 200 ms") for label, *_ in rows)
    assert any(label.endswith("p99 at 300/s") for label, *_ in rows)
    for label, *_ in rows:
        row = next((line for line in done.stdout.splitlines() if line.startswith(f"| {label} ")), None)
        assert row is not None, f"row {label!r} missing from:\n{done.stdout}"
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert "-" not in cells[2:], f"row {label!r} lacks a figure: {row}"
    assert "raw Dramatiq" in done.stdout and "eventhub / baseline" in done.stdout
    # Two rounds: every figure is a median with its spread, and the machine is described.
    assert len(document["rounds"]) == 2 and len(document["table"]) == len(rows)
    assert all(len(row["eventhub"]["values"]) == 2 for row in document["table"])
    config = document["config"]
    assert config["machine"]["cores"] and "steal_pct" in config["cpu"]
    assert config["calibration_before"]["postgresql"]["commit"]["per_second"] > 0
    assert config["calibration_before"]["rabbitmq"]["confirm_persistent"]["p50_ms"] > 0
    assert "calibration before: " in done.stdout and "stolen" in done.stdout
    assert "round 2/2" in done.stderr  # progress while it runs
    assert len(document["targets"]) == 8
