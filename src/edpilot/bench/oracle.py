"""The exact answer of a scenario: every config's steady-state cost from the noise-free hardware.

The hardware's answer comes from the analytic model without noise (`AnalyticModel.expected_cost`, fixed
prompt and output lengths) or from a profile's per-config means; the traffic's part is the steady-state cost
a live server settles into (`search.forecast.SteadyForecast`: exact for uniform and Poisson arrivals, ≥ 200 000
simulated arrivals for a trace; the tests hold it equal to a long replay through the runner). A config with
utilisation ≥ 1 has no steady state and is never the oracle; where no config keeps up, the oracle is the config
of highest throughput and a config's ratio is its utilisation over that one's.

`truth_at(..., window=True)` gives the earlier figure beside it: the expected cost of a 32-request window from
an empty queue over 2000 arrival draws (`GridForecast`), which makes a config near or past capacity look cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edpilot.backends import Backends
from edpilot.objective import BoundObjective, Objective, Observation
from edpilot.search.forecast import GridForecast, Outlook, SteadyForecast
from edpilot.serving.traffic import Traffic
from edpilot.sim import AnalyticModel, Levels, ProfileModel, SimDevice
from edpilot.space import Config, ConfigSpace

ORACLE_DRAWS = 2000  # Poisson windows averaged per config (the strategy uses its own, fewer, draws)
ORACLE_SEED = 7  # a different seed from the strategy's arrival draws


@dataclass(frozen=True)
class Hardware:
    """Noise-free batch time (s), batch energy (J) and idle power (W) of every config, in grid order."""

    service_s: np.ndarray
    energy_per_batch_j: np.ndarray
    idle_power_w: np.ndarray


def true_hardware(backends: Backends, space: ConfigSpace, *, prompt_tokens: int, output_tokens: int) -> Hardware:
    """The hardware's noise-free answer at every config of `space`."""
    device = backends.device
    assert isinstance(device, SimDevice), "the oracle needs the simulator"
    model = device.model
    rows = []
    for c in space:
        f = c.freq_mhz if c.freq_mhz is not None else device.current_freq_mhz()
        emc = c.level("emc_mhz") if c.level("emc_mhz") is not None else _board_emc_mhz(device)
        if isinstance(model, ProfileModel):
            t, e = model.table.samples(Config.of(c.batch_size, gpu_mhz=f, emc_mhz=emc)).mean(axis=0)
            idle_w = model.idle_power_w(f)
        else:
            assert isinstance(model, AnalyticModel)
            prompts, decode = [prompt_tokens] * c.batch_size, c.decode_levels()
            if decode:  # --phase-clocks: decode at its own levels, the switches priced (idle at the prefill's)
                after = Levels(decode.get("gpu_mhz", f), decode.get("emc_mhz", emc))
                cost = model.phase_cost(Levels(f, emc), after, prompts, output_tokens).batch_cost()
            else:
                cost = model.expected_cost(f, prompts, output_tokens, emc_mhz=emc)
            t, e = cost.service_s, cost.energy_j
            idle_w = model.idle_power_w(f, emc_mhz=emc)
        rows.append((t, e, idle_w))
    t, e, idle = (np.array(col) for col in zip(*rows))
    return Hardware(t, e, idle)


@dataclass(frozen=True)
class Truth:
    """The oracle at one traffic: every config's outlook, which configs are allowed, and the best cost."""

    space: ConfigSpace
    outlook: Outlook
    allowed: np.ndarray
    objective: BoundObjective
    overloaded: bool = False  # no config keeps up: costs are utilisations (a queue's growth), not the objective

    @property
    def oracle_cost(self) -> float:
        """Lowest expected cost over the allowed configs."""
        return float(self.outlook.cost[self.allowed].min())

    @property
    def oracle_config(self) -> Config:
        """The config that reaches the oracle cost."""
        return self.space.configs[int(np.argmin(np.where(self.allowed, self.outlook.cost, np.inf)))]

    def cost(self, config: Config) -> float:
        """Expected cost of `config`."""
        return float(self.outlook.cost[self.space.index(config)])

    def ratio(self, config: Config) -> float:
        """Expected cost of `config` over the oracle cost."""
        return self.cost(config) / self.oracle_cost

    def violates(self, config: Config, *, slo_p95_s: float | None, power_cap_w: float | None) -> bool:
        """Whether `config`'s expected p95 latency or window power breaks a constraint."""
        i = self.space.index(config)
        if slo_p95_s is not None and self.outlook.p95_latency_s[i] > slo_p95_s:
            return True
        return power_cap_w is not None and self.outlook.power_w[i] > power_cap_w


def truth_at(
    hardware: Hardware,
    space: ConfigSpace,
    traffic: Traffic,
    *,
    objective: Objective,
    energy_scope: str,
    baseline: Config,
    slo_p95_s: float | None = None,
    power_cap_w: float | None = None,
    window: bool = False,
) -> Truth:
    """The oracle of one traffic: `weighted` is normalised by the baseline's noise-free energy and latency.

    Steady state by default; `window=True` scores 32-request windows from an empty queue instead.
    """
    forecast: GridForecast | SteadyForecast
    if window:
        forecast = GridForecast(space, traffic, energy_scope=energy_scope, draws=ORACLE_DRAWS, seed=ORACLE_SEED)
    else:
        forecast = SteadyForecast(space, traffic, energy_scope=energy_scope)
    hw = dict(
        service_s=hardware.service_s,
        energy_per_batch_j=hardware.energy_per_batch_j,
        idle_power_w=hardware.idle_power_w,
        with_p95=True,
    )
    plain = forecast.outlook(Objective("edp").bind(None), **hw)  # type: ignore[arg-type]
    i = space.index(baseline)
    base = Observation(
        requests=1,
        energy_per_request_j=float(plain.energy_per_request_j[i]),
        mean_latency_s=float(plain.mean_latency_s[i]),
        p95_latency_s=float(plain.p95_latency_s[i]),
        mean_ttft_s=None,
        power_w=None,
        mean_batch_s=float(hardware.service_s[i]),
        energy_per_batch_j=None,
        window_s=1.0,
        keeps_up=True,
    )
    bound = objective.bind(base)
    outlook = forecast.outlook(bound, **hw)  # type: ignore[arg-type]
    if not window and outlook.utilisation is not None and not (outlook.utilisation < 1.0).any():
        # Nothing keeps up: every queue grows without bound. The best a server can do is the config of highest
        # throughput; a config is scored by its utilisation over that one's (how much faster its queue grows).
        outlook = replace(outlook, cost=outlook.utilisation)
    overloaded = not window and outlook.utilisation is not None and not (outlook.utilisation < 1.0).any()
    ok = outlook.keeps_up if outlook.keeps_up.any() else np.ones(len(space), dtype=bool)
    if slo_p95_s is not None:
        ok = ok & (outlook.p95_latency_s <= slo_p95_s)
    if power_cap_w is not None:
        ok = ok & (outlook.power_w <= power_cap_w)
    return Truth(space, outlook, ok if ok.any() else np.ones(len(space), dtype=bool), bound, overloaded)


def _board_emc_mhz(device: SimDevice) -> float | None:
    """The memory clock the simulated board holds (None: a board without one)."""
    return device.emc.emc_mhz if device.emc is not None else None
