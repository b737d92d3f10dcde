"""What `tune` and `serve` print about a run: device limits, short-window warnings, the result table."""

from __future__ import annotations

from rich.table import Table

from edpilot.choice import CONSTRAINTS, Constraints
from edpilot.cli.common import err_console
from edpilot.hardware.base import Device
from edpilot.runlog import RoundRecord
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
    """The chosen config against the baseline: the optimised cost first, EDP beside it."""
    best, base = result.best, result.baseline
    objective = result.summary.objective
    table = Table(title=f"edpilot tune: chosen config vs baseline (objective: {objective})")
    table.add_column("")
    table.add_column(f"baseline\n{_config(base)}", justify="right")
    table.add_column(f"chosen\n{_config(best)}", justify="right")
    table.add_column("change", justify="right")

    def row(label: str, b: float | None, c: float | None, fmt: str) -> None:
        change = "" if b in (None, 0) or c is None else f"{100 * (c / b - 1):+.1f}%"
        show = lambda v: "n/a (not measured)" if v is None else format(v, fmt)  # noqa: E731
        table.add_row(label, show(b), show(c), change)

    cost = lambda s: s.mean_cost if s.usable else None  # noqa: E731
    row(f"cost ({objective})", cost(base), cost(best), ".4g")
    row("energy/request (J)", base.energy_per_request_j, best.energy_per_request_j, ".3f")
    row("mean latency (s)", base.mean_latency_s, best.mean_latency_s, ".3f")
    row("p95 latency (s)", base.p95_latency_s, best.p95_latency_s, ".3f")
    row("EDP (J·s)", base.edp, best.edp, ".3f")
    table.add_row("keeps up", str(base.keeps_up), str(best.keeps_up), "")
    s = result.summary
    base_met = Constraints(**result.limits).met(base)  # type: ignore[arg-type]
    for name, met in s.constraints_met.items():
        option, _, unit = CONSTRAINTS[name]
        limit = result.limits.get(name)
        label = f"{option} {limit:g} {unit}" if limit is not None else option
        shown = lambda ok: "met" if ok else "[red]not met[/]"  # noqa: E731
        table.add_row(label, shown(base_met.get(name, False)), shown(met), "")
    gains = [f"{s.rounds} search rounds"]
    if s.failed_rounds:
        gains.append(f"{s.failed_rounds} failed")
    gains.append(f"{objective} gain {_pct(s.cost_gain_pct)}")
    if objective != "edp":
        gains.append(f"EDP gain {_pct(s.edp_gain_pct)}")
    if s.baseline_kept and s.search_choice is not None:
        gains.append(f"kept the baseline: the search's choice {_config_of(s.search_choice)} measured worse")
    table.caption = "; ".join(gains)
    return table


def say_warnings(result: TuneResult) -> None:
    """The summary's warnings (unmet constraints, the baseline kept), one line each on stderr."""
    for line in result.summary.warnings:
        err_console.print(f"[yellow]warning:[/] {line}", highlight=False)


def _config(stats: ConfigStats) -> str:
    return _config_of({"freq_mhz": stats.config.freq_mhz, "batch_size": stats.config.batch_size})


def _config_of(d: dict[str, object]) -> str:
    freq_mhz = d["freq_mhz"]
    freq = "device clock" if freq_mhz is None else f"{freq_mhz:g} MHz"
    return f"{freq}, b={d['batch_size']}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"
