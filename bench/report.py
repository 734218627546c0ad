"""The one table (both systems side by side: medians over rounds with their spread), targets, the JSON file.

Every figure is measured once per round; a round runs raw Dramatiq's phases and
then eventhub's, so a ratio is taken within a round (the same minute of the same
machine) and its median over the rounds reported, with the smallest and largest.
"""

import json
import math
from pathlib import Path

from bench import calibrate
from bench.stats import spread

# label, unit, baseline path, eventhub path (dotted keys into one round's results)
_RATES = [
    ("send / emit, one at a time, no worker running", "raw.send.rate", "eventhub.single.emit.rate"),
    ("send / emit, one at a time, workers draining", "raw.send.rate", "eventhub.single_busy.emit.rate"),
    ("send / emit, batched", "raw.send.rate", "eventhub.batched.emit.rate"),
    ("drain of a full queue", "raw.drain.rate", "eventhub.single.drain.rate"),
    ("drain / end to end, one at a time", "raw.drain.rate", "eventhub.single_busy.end_to_end.rate"),
    ("drain / end to end, batched", "raw.drain.rate", "eventhub.batched.end_to_end.rate"),
]


def rows_for(config: dict) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """The table's rows for this run's latency rates and webhook phases."""
    rows = [(label, "msg/s", tuple(raw.split(".")), tuple(eh.split("."))) for label, raw, eh in _RATES]
    for rate in config.get("rates", []):
        key = f"{rate:g}"
        for what, part in (("handler start", "start"), ("outcome recorded", "done")):
            for pct in ("p50", "p95", "p99"):
                path = ("latency", key, part, f"{pct}_ms")
                rows.append(
                    (f"latency to {what} {pct} at {key}/s", "ms", ("raw", *path), ("eventhub", *path))
                )
    for name in config.get("webhook_phases", []):
        rows.append(
            (
                f"webhooks, {name}",
                "req/s",
                ("webhooks", name, "requests", "rate"),
                ("webhooks", name, "eventhub", "rate"),
            )
        )
    return rows


def _get(results: dict, path: tuple[str, ...]) -> float:
    value = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return math.nan
        value = value[key]
    return math.nan if value is None else float(value)


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def table_rows(rounds: list[dict], config: dict) -> list[dict]:
    """The table as data: one dict per row, each figure as median/min/max over the rounds."""
    rows = []
    for label, unit, base_path, eh_path in rows_for(config):
        base = [_get(r, base_path) for r in rounds]
        eh = [_get(r, eh_path) for r in rounds]
        ratios = [_ratio(e, b) for e, b in zip(eh, base, strict=True)]
        rows.append(
            {
                "metric": label,
                "unit": unit,
                "baseline": spread(base),
                "eventhub": spread(eh),
                "ratio": spread(ratios),
            }
        )
    return rows


def _median_ratio(rounds: list[dict], top: tuple[str, ...], bottom: tuple[str, ...]) -> float:
    return spread([_ratio(_get(r, top), _get(r, bottom)) for r in rounds])["median"]


def _median(rounds: list[dict], path: tuple[str, ...]) -> float:
    return spread([_get(r, path) for r in rounds])["median"]


def targets(rounds: list[dict]) -> list[dict]:
    """The issue's targets, each from the median over the rounds (NaN, not met, when not measured)."""
    batched = ("eventhub", "batched", "end_to_end", "rate")
    p99 = ("latency", "{rate}", "done", "p99_ms")

    def at(rate: str, system: str) -> tuple[str, ...]:
        return (system, *(part.format(rate=rate) for part in p99))

    found = [
        (
            "batched end to end / raw confirmed send >= 2.0",
            _median_ratio(rounds, batched, ("raw", "send", "rate")),
            2.0,
            ">=",
        ),
        (
            "batched end to end / raw drain >= 0.5",
            _median_ratio(rounds, batched, ("raw", "drain", "rate")),
            0.5,
            ">=",
        ),
        (
            "drain of a full queue / raw drain >= 0.35",
            _median_ratio(rounds, ("eventhub", "single", "drain", "rate"), ("raw", "drain", "rate")),
            0.35,
            ">=",
        ),
        (
            "one-at-a-time emit (no worker running) / raw confirmed send >= 0.6",
            _median_ratio(rounds, ("eventhub", "single", "emit", "rate"), ("raw", "send", "rate")),
            0.6,
            ">=",
        ),
        ("p99 emit to outcome recorded at 200/s < 15 ms", _median(rounds, at("200", "eventhub")), 15.0, "<"),
        (
            "p99 at 200/s / raw Dramatiq's p99 at 200/s <= 5",
            _median_ratio(rounds, at("200", "eventhub"), at("200", "raw")),
            5.0,
            "<=",
        ),
        (
            "p99 emit to outcome recorded at 1000/s < 50 ms",
            _median(rounds, at("1000", "eventhub")),
            50.0,
            "<",
        ),
        (
            "webhooks to a fast receiver / a plain requests loop >= 0.7",
            _median_ratio(
                rounds, ("webhooks", "fast", "eventhub", "rate"), ("webhooks", "fast", "requests", "rate")
            ),
            0.7,
            ">=",
        ),
    ]
    compare = {">=": lambda v, t: v >= t, "<": lambda v, t: v < t, "<=": lambda v, t: v <= t}
    return [
        {"target": name, "value": value, "met": not math.isnan(value) and compare[op](value, limit)}
        for name, value, limit, op in found
    ]


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if unit.endswith("/s") else f"{value:,.1f}"


def _cell(figure: dict, unit: str, rounds: int) -> str:
    median = _fmt(figure["median"], unit)
    if rounds < 2 or median == "-":
        return median
    return f"{median} ({_fmt(figure['min'], unit)}-{_fmt(figure['max'], unit)})"


def _ratio_cell(figure: dict, rounds: int) -> str:
    if math.isnan(figure["median"]):
        return "-"
    if rounds < 2:
        return f"{figure['median']:.2f}"
    return f"{figure['median']:.2f} ({figure['min']:.2f}-{figure['max']:.2f})"


def header(config: dict) -> list[str]:
    """The lines above the table: what ran, on what, under which load."""
    m = config["machine"]
    cpu = config.get("cpu") or {}
    lines = [
        f"eventhub vs raw Dramatiq - {config['repeat']} round(s), medians (min-max); N={config['n']} "
        f"(one at a time: {config['n_single']}), batch {config['batch']}, {config['processes']} processes x "
        f"{config['threads']} threads, latency at {', '.join(f'{r:g}' for r in config['rates'])}/s for "
        f"{config['seconds']:g} s each",
        f"machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; "
        f"load before {config['load_before']}, after {config.get('load_after', '?')}; CPU busy "
        f"{cpu.get('busy_pct', '?')}%, stolen {cpu.get('steal_pct', '?')}% over the run",
    ]
    for when in ("before", "after"):
        if config.get(f"calibration_{when}"):
            lines.append(f"calibration {when}: {calibrate.headline(config[f'calibration_{when}'])}")
    return lines


# When a run's figures are the machine's as much as the code's (docs/benchmark.md, "Cautions"): CPU
# steal over the run, load already there when it began (per core), and calibration figures that
# moved between before and after by more than this share (on 2026-12-02 one machine's Python
# figure went from 11.8 to 19.1 us/op within one run, and its commit rate halved within an hour).
STEAL_PCT = 2.0
LOAD_PER_CORE = 0.5
CALIBRATION_MOVED = 0.25


def cautions(config: dict) -> list[str]:
    """Why this run's figures may say more about the machine than the code (empty: none seen)."""
    found = []
    steal = (config.get("cpu") or {}).get("steal_pct")
    if steal is not None and steal >= STEAL_PCT:
        found.append(
            f"CPU steal {steal}% over the run: the hypervisor ran other guests on this machine's cores"
        )
    cores = (config.get("machine") or {}).get("cores") or 1
    load = config.get("load_before") or []
    if load and load[0] >= LOAD_PER_CORE * cores:
        found.append(f"load {load[0]} on {cores} cores when the run began: other work was running")
    before = calibrate.key_figures(config.get("calibration_before") or {})
    after = calibrate.key_figures(config.get("calibration_after") or {})
    moved = [
        f"{name} {shown.format(value)} -> {shown.format(after[name][0])} {unit}"
        for name, (value, shown, unit) in before.items()
        if name in after and value and abs(after[name][0] - value) / value > CALIBRATION_MOVED
    ]
    if moved:
        found.append(
            f"the calibration moved by more than {CALIBRATION_MOVED:.0%} during the run "
            f"({'; '.join(moved)}): the machine's speed changed under it"
        )
    return found


# The phases whose CPU use tells what bounds them (machine-wide busy %, median over the rounds).
CPU_PHASES = [
    ("raw send", ("raw", "send", "cpu", "busy_pct")),
    ("raw drain", ("raw", "drain", "cpu", "busy_pct")),
    ("emit 1-by-1", ("eventhub", "single", "emit", "cpu", "busy_pct")),
    ("eventhub drain", ("eventhub", "single", "drain", "cpu", "busy_pct")),
    ("batched end to end", ("eventhub", "batched", "end_to_end", "cpu", "busy_pct")),
    ("requests loop", ("webhooks", "fast", "requests", "cpu", "busy_pct")),
    ("eventhub webhooks", ("webhooks", "fast", "eventhub", "cpu", "busy_pct")),
]


def cpu_line(rounds: list[dict]) -> str:
    """How busy the machine's CPUs were in each phase: near 100% means the phase was CPU-bound."""
    parts = []
    for name, path in CPU_PHASES:
        value = spread([_get(r, path) for r in rounds])["median"]
        if not math.isnan(value):
            parts.append(f"{name} {value:.0f}%")
    return "CPU busy (whole machine) during: " + ", ".join(parts) if parts else ""


def render(rounds: list[dict], config: dict) -> str:
    """The printed report: the header, the table and the targets."""
    n = len(rounds)
    titles = ["metric", "unit", "raw Dramatiq / baseline", "eventhub", "eventhub / baseline"]
    body = [
        [
            r["metric"],
            r["unit"],
            _cell(r["baseline"], r["unit"], n),
            _cell(r["eventhub"], r["unit"], n),
            _ratio_cell(r["ratio"], n),
        ]
        for r in table_rows(rounds, config)
    ]
    widths = [max(len(row[i]) for row in [titles, *body]) for i in range(len(titles))]

    def line(cells: list[str]) -> str:
        padded = (
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    out = [*header(config), *(f"caution: {c}" for c in cautions(config))]
    out += [line(titles), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in body] + ["", cpu_line(rounds), ""]
    for t in targets(rounds):
        mark = "met" if t["met"] else ("not measured" if math.isnan(t["value"]) else "NOT met")
        out.append(f"target {t['target']}: {t['value']:.2f} ({mark})")
    return "\n".join(out)


def write_json(path: Path, rounds: list[dict], config: dict) -> None:
    """Everything measured (every round), with the table of medians and the targets, as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "config": config,
        "rounds": rounds,
        "table": table_rows(rounds, config),
        "targets": targets(rounds),
        "cautions": cautions(config),
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
