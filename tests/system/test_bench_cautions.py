"""The benchmark says when a run's figures are the machine's as much as the code's (bench/report.py)."""

import json

from bench import report


def calibration(*, python_us: float, commits: float, confirm_ms: float) -> dict:
    return {
        "python": {"us_per_op": python_us},
        "postgresql": {
            "commit": {"per_second": commits, "p50_ms": 0.3, "p99_ms": 0.6},
            "select_1": {"p50_ms": 0.1},
        },
        "rabbitmq": {
            "confirm_persistent": {"p50_ms": confirm_ms, "p99_ms": confirm_ms * 3},
            "confirm_transient": {"p50_ms": confirm_ms / 2},
        },
    }


def config(*, steal: float, load: float, after: dict) -> dict:
    return {
        "repeat": 1,
        "n": 10,
        "n_single": 10,
        "batch": 5,
        "processes": 2,
        "threads": 8,
        "rates": [200.0],
        "seconds": 1.0,
        "machine": {"cpu_model": "AMD EPYC", "cores": 2, "memory_gib": 23.5, "python": "3.11.7"},
        "load_before": [load, 0.5, 0.4],
        "load_after": [1.0, 0.8, 0.5],
        "cpu": {"busy_pct": 50.0, "steal_pct": steal},
        "calibration_before": calibration(python_us=11.8, commits=4666, confirm_ms=0.5),
        "calibration_after": after,
    }


def test_a_quiet_run_prints_no_caution():
    quiet = config(steal=0.08, load=0.3, after=calibration(python_us=12.4, commits=4100, confirm_ms=0.55))
    assert report.cautions(quiet) == []
    assert "caution" not in report.render([{}], quiet)


def test_steal_load_and_a_moving_calibration_are_each_printed_above_the_table(tmp_path):
    noisy = config(steal=7.22, load=2.3, after=calibration(python_us=19.1, commits=1297, confirm_ms=0.52))

    printed = report.render([{}], noisy).splitlines()

    cautions = [line for line in printed if line.startswith("caution: ")]
    assert len(cautions) == 3, printed
    assert "CPU steal 7.22%" in cautions[0]
    assert "load 2.3 on 2 cores" in cautions[1]
    # The figures that moved, before and after; RabbitMQ's (0.50 -> 0.52 ms) did not.
    assert "Python 11.8 -> 19.1 us/op" in cautions[2]
    assert "PostgreSQL 4,666 -> 1,297 commits/s" in cautions[2]
    assert "RabbitMQ" not in cautions[2]
    table = next(i for i, line in enumerate(printed) if line.startswith("| metric"))
    assert printed.index(cautions[-1]) < table
    path = tmp_path / "bench.json"
    report.write_json(path, [{}], noisy)
    assert json.loads(path.read_text())["cautions"] == [c.removeprefix("caution: ") for c in cautions]
