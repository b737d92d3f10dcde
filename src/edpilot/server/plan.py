"""What to serve at: online tuning, the choice of a tuning run (`--config run.jsonl`), or a fixed config."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from edpilot.errors import ConfigError
from edpilot.hardware.base import Device
from edpilot.run import SearchRequest
from edpilot.runlog import read_run_log
from edpilot.space import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServePlan:
    """Online tuning, or one fixed config (`freq_mhz` None: leave the clock alone)."""

    online: bool
    fixed: Config | None = None
    source: str = "online tuning"


def resolve_plan(*, tune: str | None, config: Path | None, freq_mhz: float | None, batch_size: int | None) -> ServePlan:
    """Check that at most one of --tune, --config, --freq/--batch was given; online tuning by default."""
    fixed_given = freq_mhz is not None or batch_size is not None
    if sum((tune is not None, config is not None, fixed_given)) > 1:
        raise ConfigError("give one of --tune online, --config RUN.jsonl, or --freq/--batch")
    if tune is not None and tune != "online":
        raise ConfigError(f"--tune takes 'online', got {tune!r}")
    if config is not None:
        summary = read_run_log(config).summary
        if summary is None:
            raise ConfigError(f"{config} has no summary (the run did not finish): nothing was chosen to serve")
        return ServePlan(False, summary.best_config, f"the choice of {config}")
    if fixed_given:
        if batch_size is None:
            raise ConfigError("--freq needs --batch")
        return ServePlan(False, Config.of(batch_size, gpu_mhz=freq_mhz), "--freq/--batch")
    return ServePlan(True)


def plan_search(plan: ServePlan, search: SearchRequest, device: Device) -> SearchRequest:
    """The session's search: as asked when online; one config with the `baseline` strategy when fixed."""
    caps = device.capabilities
    if plan.online:
        if search.parsed_objective.needs_energy and not caps.has_meter:
            raise ConfigError(
                f"objective {search.objective} needs an energy meter and device {device.name} has none; "
                "use --objective latency, or serve a fixed --batch"
            )
        return search
    assert plan.fixed is not None
    freq, emc = plan.fixed.freq_mhz, plan.fixed.level("emc_mhz")
    if (freq is not None or emc is not None) and not (caps.can_set_clocks or caps.dry_run):
        log.warning("%s cannot change clocks (%s): serving at its current clock", device.name, caps.read_only_reason)
        freq = emc = None
    objective = search.objective
    if search.parsed_objective.needs_energy and not caps.has_meter:
        objective = "latency"  # nothing to tune, only to record: rounds are costed by latency
    return replace(
        search,
        freqs=None if freq is None else f"{freq:g}",
        emcs=None if emc is None else f"{emc:g}",
        batches=str(plan.fixed.batch_size),
        baseline=None if freq is None else f"{freq:g},{plan.fixed.batch_size}",
        strategy="baseline",
        objective=objective,
    )
