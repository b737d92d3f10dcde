"""`edpilot`: our search — learn the hardware, compute the queue, choose on predicted cost (docs/search.md).

Each window teaches the hardware's answer at its config — mean batch time (s), energy per batch (J) and the
idle power between batches (W) — which does not depend on the traffic and is measured to 1–2 %, where the
window's cost moves by 20–35 % with the luck of Poisson arrivals. `LogResponse` models time and energy over
the grid with uncertainty; `GridForecast` turns them into every config's expected cost at the current traffic
with the runner's own batching semantics. `propose` measures the config with the lowest optimistic cost (the
hardware κ standard deviations better than its posterior mean: a lower confidence bound); `best` serves the
lowest predicted cost among measured configs. Configs that failed or are predicted to break `--slo-p95` /
`--power-cap` are avoided; one predicted too slow to keep up is measured only as a probe of bounded cost, and
never served once measured so. `set_traffic` re-ranks everything at once from the same model.
"""

from __future__ import annotations

import numpy as np

from edpilot.objective import Observation
from edpilot.search.base import SearchContext, Strategy
from edpilot.search.forecast import GridForecast, Outlook
from edpilot.search.hardware import IdlePower, LogResponse, features, prior
from edpilot.serving.queueing import keeps_up_at
from edpilot.serving.traffic import Traffic
from edpilot.space import Config

KAPPA = 1.0  # optimism of `propose`, in posterior standard deviations of log time and log energy
# Prior slopes of log time / log energy in log b and log f, ±2 sd spanning the physical range. Time: between
# flat (memory- or host-bound) and proportional (compute-bound) in b, between flat and 1/f in f. Energy = power
# × time, power rising with f: slope in f between −1 and +1.
TIME_SLOPES = {"slope_b": 0.5, "slope_f": -0.5, "slope_sd": 0.25}
ENERGY_SLOPES = {"slope_b": 0.5, "slope_f": 0.0, "slope_sd": 0.5}
PROBE_LOSS = 1.1  # a config predicted not to keep up is measured only if one window costs ≤ 1.1 × the best allowed


class EdpilotStrategy(Strategy):
    """Model-based search: a hardware posterior, the exact queue at the current traffic, a lower confidence bound."""

    name = "edpilot"

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        self._configs = ctx.space.configs
        phi = features(ctx.space)
        self.time = LogResponse(phi, *prior(ctx.space, **TIME_SLOPES))
        self.energy = LogResponse(phi, *prior(ctx.space, **ENERGY_SLOPES))
        freqs = np.array([c.freq_mhz or 0.0 for c in self._configs])
        self.idle = IdlePower(freqs, ctx.idle_power_w)
        self.failed = np.zeros(len(self._configs), dtype=bool)
        self.forecast = GridForecast(ctx.space, ctx.traffic, energy_scope=ctx.energy_scope)
        self._cache: dict[str, Outlook] = {}

    def observe(self, config: Config, obs: Observation) -> float | None:
        """Cost the window, and learn the config's batch time, batch energy and idle power from it."""
        cost = super().observe(config, obs)
        i = self.space.index(config)
        if obs.failed:
            self.failed[i] = True
        elif obs.mean_batch_s > 0:
            batches = -(-obs.requests // config.batch_size)
            self.time.add(i, obs.mean_batch_s, batches)
            if obs.energy_per_batch_j is not None and obs.energy_per_batch_j > 0:
                self.energy.add(i, obs.energy_per_batch_j, batches)
                if obs.power_w is not None:
                    self.idle.add(
                        config.freq_mhz or 0.0,
                        idle_j=obs.power_w * obs.window_s - batches * obs.energy_per_batch_j,
                        idle_s=obs.window_s - batches * obs.mean_batch_s,
                    )
            self.time.fit()
            self.energy.fit()
        self._cache.clear()
        return cost

    def set_traffic(self, traffic: Traffic) -> None:
        """Re-rank every config at the new traffic from the hardware model: nothing is measured again."""
        super().set_traffic(traffic)
        self.forecast = GridForecast(self.space, traffic, energy_scope=self.ctx.energy_scope)
        self._cache.clear()

    def outlook(self, kind: str = "mean") -> Outlook:
        """Predicted cost, latency, power of every config: at the posterior mean, or optimistic ('lcb')."""
        if kind not in self._cache:
            shift = KAPPA if kind == "lcb" else 0.0
            log_s, log_e = self.time.mean - shift * self.time.sd, self.energy.mean - shift * self.energy.sd
            self._cache[kind] = self.forecast.outlook(
                self.ctx.objective,
                service_s=np.exp(log_s),
                energy_per_batch_j=np.exp(log_e),
                idle_power_w=self.idle.predict(),
                with_p95=self.ctx.slo_p95_s is not None,
            )
        return self._cache[kind]

    def within_limits(self) -> np.ndarray:
        """Configs that have not failed and are predicted to meet `--slo-p95` / `--power-cap` (the filter is
        dropped when nothing would pass it)."""
        ok = ~self.failed
        if not self.time.windows.any() or (self.ctx.slo_p95_s is None and self.ctx.power_cap_w is None):
            return ok
        mean = self.outlook("mean")
        within = ok.copy()
        if self.ctx.slo_p95_s is not None:
            within &= mean.p95_latency_s <= self.ctx.slo_p95_s
        if self.ctx.power_cap_w is not None:
            within &= mean.power_w <= self.ctx.power_cap_w
        return within if within.any() else ok

    def allowed(self) -> np.ndarray:
        """Configs that may be served: within the limits, and keeping up with the traffic's mean rate (batch
        time ≤ b/λ) — the filter is dropped when nothing would pass it.

        A measured config is judged on its own windows' mean batch time, known to 1–2 %, not on the posterior
        mean, which leans toward the smooth surface: next to a throttling step that lean put a config measured at
        99.5 % utilisation past 100 %. The windows' own keeps-up flags are not used either: each compares with that
        window's arrivals, which under Poisson miss the mean rate by ±18 % at 32 requests, so a config at 95 %
        utilisation falls behind in about half of its windows.
        """
        ok = self.within_limits()
        if not self.time.windows.any():
            return ok
        keeping = ok & keeps_up_at(self.ctx.traffic, self.forecast.batch_of, np.exp(self.time.measured_or_mean()))
        return keeping if keeping.any() else ok

    def propose(self) -> Config:
        """The config with the lowest optimistic predicted cost among the allowed ones and the probes.

        A probe is an unmeasured config within the limits that the model predicts too slow to keep up, but whose
        predicted cost for one window — its queue growing through it — is within `PROBE_LOSS` of the best
        allowed config's: measuring it risks at most that, and teaches what the smooth surface cannot (the
        step below a memory cliff, a config at 99 % utilisation that the model puts at 104 %).
        """
        if not self.time.windows.any():
            return self.ctx.baseline
        allowed, lcb = self.allowed(), self.outlook("lcb").cost
        cost = np.where(allowed, lcb, np.inf)
        if not np.isfinite(cost).any():
            return self.ctx.baseline
        # Only a config that would beat the pick can matter: the mean outlook (a second pass) is priced for those.
        probes = self.within_limits() & ~allowed & (self.time.windows == 0) & (lcb < cost.min())
        if probes.any():
            mean = self.outlook("mean").cost
            probes &= mean <= PROBE_LOSS * float(np.min(mean[allowed]))
            cost = np.where(probes, lcb, cost)
        return self._configs[int(np.argmin(cost))]

    def best(self) -> Config:
        """The measured config with the lowest predicted cost at the current traffic among the allowed ones;
        when no measured config is allowed (the traffic changed), the allowed config predicted best."""
        measured = (self.time.windows > 0) & ~self.failed
        if not measured.any():
            return super().best()
        allowed = self.allowed()
        pool = measured & allowed
        if not pool.any():
            pool = allowed if allowed.any() else measured
        cost = np.where(pool, self.outlook("mean").cost, np.inf)
        return self._configs[int(np.argmin(cost))]
