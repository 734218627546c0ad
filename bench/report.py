"""The one table (both systems side by side, with eventhub / raw ratios), targets, and the JSON file."""

import json
import math
from pathlib import Path

# label, unit, raw value path, eventhub value path (dotted keys into the results)
_RATES = [
    ("send / emit, one at a time, no worker running", "raw.send.rate", "eventhub.single.emit.rate"),
    ("send / emit, one at a time, workers draining", "raw.send.rate", "eventhub.single_busy.emit.rate"),
    ("send / emit, batched", "raw.send.rate", "eventhub.batched.emit.rate"),
    ("drain of a full queue", "raw.drain.rate", "eventhub.single.drain.rate"),
    ("drain / end to end, one at a time", "raw.drain.rate", "eventhub.single_busy.end_to_end.rate"),
    ("drain / end to end, batched", "raw.drain.rate", "eventhub.batched.end_to_end.rate"),
]
ROWS = [(label, "msg/s", tuple(raw.split(".")), tuple(eh.split("."))) for label, raw, eh in _RATES]
for _what, _key in (("handler start", "latency_start"), ("outcome recorded", "latency_done")):
    for _pct in ("p50", "p95", "p99"):
        _path = (_key, f"{_pct}_ms")
        ROWS.append((f"latency to {_what} {_pct}", "ms", ("raw", *_path), ("eventhub", *_path)))


def _get(results: dict, path: tuple[str, ...]) -> float:
    value = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return math.nan
        value = value[key]
    return float(value)


def table_rows(results: dict) -> list[dict]:
    """The table as data: one dict per row."""
    rows = []
    for label, unit, raw_path, eh_path in ROWS:
        raw, eh = _get(results, raw_path), _get(results, eh_path)
        ratio = eh / raw if raw and not math.isnan(raw) and not math.isnan(eh) else math.nan
        rows.append({"metric": label, "unit": unit, "raw_dramatiq": raw, "eventhub": eh, "ratio": ratio})
    return rows


def targets(results: dict) -> list[dict]:
    """The issue's three targets, measured."""
    send = _get(results, ("raw", "send", "rate"))
    batched = _get(results, ("eventhub", "batched", "end_to_end", "rate"))
    single = _get(results, ("eventhub", "single", "emit", "rate"))
    p99 = _get(results, ("eventhub", "latency_done", "p99_ms"))
    return [
        {
            "target": "batched end to end / raw confirmed send >= 1.0",
            "value": batched / send if send else math.nan,
            "met": bool(send) and batched / send >= 1.0,
        },
        {
            "target": "one-at-a-time emit (no worker running, as raw send) / raw confirmed send >= 0.5",
            "value": single / send if send else math.nan,
            "met": bool(send) and single / send >= 0.5,
        },
        {"target": "p99 emit to outcome recorded < 50 ms", "value": p99, "met": p99 < 50},
    ]


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if unit == "msg/s" else f"{value:,.1f}"


def render(results: dict, config: dict) -> str:
    """The printed report: a header line, the table and the targets."""
    header = ["metric", "unit", "raw Dramatiq", "eventhub", "eventhub / raw"]
    body = [
        [
            r["metric"],
            r["unit"],
            _fmt(r["raw_dramatiq"], r["unit"]),
            _fmt(r["eventhub"], r["unit"]),
            "-" if math.isnan(r["ratio"]) else f"{r['ratio']:.2f}",
        ]
        for r in table_rows(results)
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    out = [
        f"eventhub vs raw Dramatiq - N={config['n']} (one at a time: {config['n_single']}), batch "
        f"{config['batch']}, {config['processes']} processes x {config['threads']} threads, latency at "
        f"{config['rate']:g}/s for {config['seconds']:g} s; load before {config['load_before']}",
        line(header),
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        *[line(row) for row in body],
        "",
    ]
    for t in targets(results):
        mark = "met" if t["met"] else "NOT met"
        out.append(f"target {t['target']}: {t['value']:.2f} ({mark})")
    return "\n".join(out)


def write_json(path: Path, results: dict, config: dict) -> None:
    """Everything measured, with the table and targets, as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "config": config,
        "results": results,
        "table": table_rows(results),
        "targets": targets(results),
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
