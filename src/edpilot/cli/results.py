"""What `tune` and `serve` print about a run: device limits, short-window warnings, the result table."""

from __future__ import annotations

from typing import cast

from rich.table import Table

from edpilot.choice import CONSTRAINTS, Constraints
from edpilot.cli.common import err_console
from edpilot.hardware.base import Device
from edpilot.runlog import RoundRecord
from edpilot.space import Config, knob_label
from edpilot.stats import ConfigStats
from edpilot.tuner import TuneResult

MIN_METER_UPDATES = 10  # a window should span many meter updates


def describe_limits(device: Device, *, quiet: bool) -> None:
    """Say on stderr when clocks will not really change (read-only device, dry run, no knob)."""
    caps = device.capabilities
    if quiet or caps.can_set_clocks:
        return
    if caps.dry_run:
        err_console.print(
            f"note: dry run on {device.name}: clocks are never changed; every round is measured at the current "
            "clock and the run log records it (actual_freq_mhz)"
        )
        return
    clock = device.current_freq_mhz()
    at = f"at the current clock {clock:g} MHz" if clock is not None else "at whatever clock it runs"
    err_console.print(
        f"note: {device.name} cannot change clocks ({caps.read_only_reason}): searching batch size only, {at}"
    )


def warn_short_window(record: RoundRecord, device: Device) -> bool:
    """Warn (on stderr) when a window spans too few meter updates to measure its energy well; True if it did."""
    updates = record.obs.meter_updates
    if updates is None or updates >= MIN_METER_UPDATES:
        return False
    interval_ms = device.capabilities.meter_update_interval_ms
    err_console.print(
        f"[yellow]warning:[/] a {record.obs.window_s:.2f} s window spans only {updates:.1f} meter updates "
        f"(every {interval_ms:g} ms); raise --requests-per-round"
    )
    return True


def result_table(result: TuneResult) -> Table:
    """The chosen config against the baseline (and the stock governor, when measured): the optimised cost first,
    EDP beside it, then the latency split into fill wait, queue wait and service; the caption says where the
    EDP gain comes from (edpilot.attribution)."""
    best, base = result.best, result.baseline
    s = result.summary
    governor = s.governor
    objective = s.objective
    table = Table(title=f"edpilot tune: chosen config vs baseline (objective: {objective})")
    table.add_column("", no_wrap=True)
    table.add_column(f"baseline\n{_config(base)}", justify="right")
    if governor is not None:
        table.add_column(f"stock governor\nunpinned, b={governor['batch_size']}", justify="right")
    table.add_column(f"chosen\n{_config(best)}", justify="right")
    table.add_column("change", justify="right")
    if governor is not None:
        table.add_column("vs governor", justify="right")

    def change(b: object, c: float | None) -> str:
        return "" if not isinstance(b, int | float) or b == 0 or c is None else f"{100 * (c / b - 1):+.1f}%"

    def row(label: str, key: str, b: float | None, c: float | None, fmt: str) -> None:

        def show(v: object) -> str:
            return "n/a (not measured)" if v is None else format(v, fmt)

        cells = [label, show(b)]
        g = governor.get(key) if governor is not None else None
        if governor is not None:
            cells.append(show(g))
        cells += [show(c), change(b, c)]
        if governor is not None:
            cells.append(change(g, c))
        table.add_row(*cells)

    def cost(st: ConfigStats) -> float | None:
        return st.mean_cost if st.usable else None

    row(f"cost ({objective})", "cost", cost(base), cost(best), ".4g")
    row("energy/request (J)", "energy_per_request_j", base.energy_per_request_j, best.energy_per_request_j, ".3f")
    row("mean latency (s)", "mean_latency_s", base.mean_latency_s, best.mean_latency_s, ".3f")
    row("  fill wait (s)", "mean_fill_wait_s", base.mean_fill_wait_s, best.mean_fill_wait_s, ".3f")
    row("  queue wait (s)", "mean_queue_wait_s", base.mean_queue_wait_s, best.mean_queue_wait_s, ".3f")
    row("  service (s)", "mean_service_s", base.mean_service_s, best.mean_service_s, ".3f")
    row("p95 latency (s)", "p95_latency_s", base.p95_latency_s, best.p95_latency_s, ".3f")
    row("EDP (J·s)", "edp", base.edp, best.edp, ".3f")
    keeps = [str(base.keeps_up)] + ([str(governor["keeps_up"])] if governor is not None else [])
    table.add_row("keeps up", *keeps, str(best.keeps_up), "", *([""] if governor is not None else []))
    base_met = Constraints(**result.limits).met(base)
    for name, met in s.constraints_met.items():
        option, _, unit = CONSTRAINTS[name]
        limit = result.limits.get(name)
        label = f"{option} {limit:g} {unit}" if limit is not None else option

        def shown(ok: bool) -> str:
            return "met" if ok else "[red]not met[/]"

        table.add_row(
            label,
            shown(base_met.get(name, False)),
            *([""] if governor is not None else []),
            shown(met),
            "",
            *([""] if governor is not None else []),
        )
    gains = [f"{s.rounds} search rounds" + (" (interrupted: chosen from what was measured)" if s.interrupted else "")]
    if s.failed_rounds:
        gains.append(f"{s.failed_rounds} failed")
    gains.append(f"{objective} gain {_pct(s.cost_gain_pct)}")
    if objective != "edp":
        gains.append(f"EDP gain {_pct(s.edp_gain_pct)}")
    if s.baseline_kept and s.search_choice is not None:
        gains.append(f"kept the baseline: the search's choice {_config_of(s.search_choice)} measured worse")
    if governor is not None:
        gains.append(f"EDP gain vs stock governor {_pct(s.edp_gain_vs_governor_pct)}")
    lines = ["; ".join(gains)]
    for label, att in (("vs baseline", s.attribution), ("vs stock governor", s.attribution_vs_governor)):
        if att is not None:
            lines.append(f"where it comes from ({label}): {describe_parts(att)}")
    table.caption = "\n".join(lines)
    return table


def describe_parts(att: dict[str, object]) -> str:
    """An attribution dict (Attribution.to_dict) as one line: each part's factor and share, largest first."""
    labels = {"fill_wait": "fill wait", "queue_wait": "queue", "service": "service", "energy": "energy"}
    parts = cast("dict[str, dict[str, float]]", att["parts"])
    order = sorted(parts, key=lambda p: -abs(parts[p]["log_term"]))
    text = []
    for p in order:
        share = parts[p]["share_pct"]
        shown = "" if share is None else f" ({0 if round(share) == 0 else round(share)}%)"
        text.append(f"{labels.get(p, p)} ×{parts[p]['factor']:.3g}{shown}")
    return f"EDP {att['edp_change_pct']:+.1f}% = " + " · ".join(text)


def say_warnings(result: TuneResult) -> None:
    """The summary's warnings (unmet constraints, the baseline kept), one line each on stderr."""
    for line in result.summary.warnings:
        err_console.print(f"[yellow]warning:[/] {line}", highlight=False)


def _config(stats: ConfigStats) -> str:
    return _label(stats.config)


def _config_of(d: dict[str, object]) -> str:
    return _label(Config.from_fields(d))


def _label(config: Config) -> str:
    """A config in a column head: `714 MHz, b=4`; other knobs a line each, in MHz too: `EMC 2133`, and a decode
    level after an arrow (`→ 612`: the GPU's, `EMC → 665.6`)."""
    gpu_mhz = config.level("gpu_mhz")
    lines = ["device clock" if gpu_mhz is None else f"{gpu_mhz:g} MHz"]
    lines += [f"{knob_label(name)} {level:g}" for name, level in config.device_levels().items() if name != "gpu_mhz"]
    lines += [
        f"→ {level:g}" if name == "gpu_mhz" else f"{knob_label(name)} → {level:g}"
        for name, level in config.decode_levels().items()
    ]
    return f"{lines[0]}, b={config.batch_size}" if len(lines) == 1 else "\n".join([*lines, f"b={config.batch_size}"])


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"
