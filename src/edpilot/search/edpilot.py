"""`edpilot`: our search — learn the hardware, compute the steady-state queue, explore safely (docs/search.md).

Each window teaches the hardware's answer at its config — mean batch time (s), energy per batch (J) and the
idle power between batches (W) — which does not depend on the traffic and is measured to 1–2 %. `LogResponse`
models time and energy over the grid with uncertainty; `SteadyForecast` turns them into every config's
steady-state cost at the current traffic (the bench oracle's definition). Then:

- `propose` measures, inside a trust region around the incumbent that widens until it holds a promising config,
  the config with the lowest optimistic cost (a lower confidence bound) — among configs that keep up even at
  their pessimistic batch time. A config that might keep up only optimistically is measured as a bounded probe
  (`round_batches` = 2), when the backlog it can leave is at most one batch of the incumbent's; so is an
  unmeasured config near capacity (keeping up at 1 sd, not at KAPPA_NEAR) whose full round is a probe's length
  anyway, two batches: served as a probe, it keeps the probe's bounds and still counts as a full round. When nothing is
  promising, an exploration floor measures the unmeasured config whose cost under a heavy-tailed (Cauchy) prior
  for one-off deviations from the smooth surface could beat the incumbent by a margin. A confirmed config whose
  LCB is within that margin of the incumbent waits for a floor full round (splitting near-ties comes last).
- Limits (`--slo-p95`, `--power-cap`) are judged at an unmeasured config's optimistic batch time and energy when
  exploring, at every config's pessimistic ones when choosing.
- A config measured behind — its own batch time at or past b/λ, or its queue grew through a window while it ran
  at ρ ≥ 0.9 — is dropped and not served again at that traffic; so is one whose first window, held back as a
  possible outlier, is behind even without the largest plausible one-off slowdown.
- A window whose batch time differs from its config's earlier windows by more than `OUTLIER_LOG` (and 4 noise
  sd) is held back until another window there says which one was the outlier; the incumbent with such a window
  is re-measured before anything switches.
- A batch at a lower clock takes at most f_k / f_j as long as a measured config at the same batch size and a
  higher clock f_k: that ceiling bounds every prediction, so a cliff elsewhere that bends the smooth fit does not
  put the configs next to the incumbent past capacity. Nor is it faster than at a higher clock: a config measured
  behind bounds every lower clock at its batch from below, and no probe goes there.
- The last round of a budget (`ctx.budget`, per traffic phase) re-measures a window held back as better than
  predicted, else exploits: the safe config of lowest expected cost,
  never a probe or the floor, so a short budget ends on a full round `best` can choose.
- `best` serves the measured config with the lowest predicted steady-state cost among those that keep up (by
  more than their windows' standard error, or through CONFIRM_ROUNDS full rounds); when none keeps up, the
  config of highest throughput.
"""

from __future__ import annotations

import numpy as np

from edpilot.objective import Observation
from edpilot.search.base import SearchContext, Strategy
from edpilot.search.continuous_forecast import (
    STEP_ENERGY_SLOPES,
    STEP_TIME_SLOPES,
    busy_units,
    learn_occupancy,
    make_forecast,
    occupancy_shift,
    taught_by,
)
from edpilot.search.forecast import Outlook
from edpilot.search.hardware import IdlePower, LogResponse, features, idle_key, prior
from edpilot.search.prior import vouched, warm_start
from edpilot.serving.queueing import backlog_delay_s, utilisation
from edpilot.serving.traffic import Traffic
from edpilot.space import Config

KAPPA = 1.0  # optimism of `propose`, in posterior standard deviations of log time and log energy
KAPPA_SAFE = 1.0  # pessimism of the keep-up test of an unmeasured config (log time + KAPPA_SAFE sd)
# Prior slopes of log time / log energy in log b and log f, ±2 sd spanning the physical range. Time: between
# flat (memory- or host-bound) and proportional (compute-bound) in b, between flat and 1/f in f. Energy = power
# × time, power rising with f: slope in f between −1 and +1.
TIME_SLOPES = {"slope_b": 0.5, "slope_f": -0.5, "slope_sd": 0.25}
ENERGY_SLOPES = {"slope_b": 0.5, "slope_f": 0.0, "slope_sd": 0.5}
BACKLOG_HORIZON_ROUNDS = 5  # an inherited backlog's one-off delay is weighed against this many rounds' cost
IMPROVE = 0.0  # a config is promising when its optimistic cost is below the incumbent's by this fraction
PROBE_BATCHES = 2  # a probe serves this many batches, then the search goes back to configs that keep up
PROBE_BACKLOG_BATCHES = 1.0  # a probe may leave at most this many incumbent batches of backlog (pessimistic)
PROBE_PRICE = 1.0  # ... and its expected backlog may add at most this × the incumbent's latency to the next round
RHO_BEHIND = 0.9  # a window that fell behind drops its config when the config's own ρ is at least this
SURPRISE_LEVEL = 0.05  # the floor's quantile of the heavy-tailed deviation prior (Cauchy, scale τ)
SURPRISE_MAX_LOG = 0.7  # at most a 2× deviation (log units) is plausible
FLOOR_MARGIN = 0.05  # the floor measures a config whose plausible cost beats the incumbent by 5 %
FLOOR_EVERY = 3  # every third search round goes to the floor when it has a candidate (else when nothing else)
PROBE_QUEUE_BATCHES = 2.0  # no probe while more than this many incumbent batches are queued
PROBE_RHO_MAX = 1.1  # a probe's config is at most 10 % past capacity at its posterior mean batch time
PROBE_HANDICAP = 1.1  # a probe's optimistic cost counts 10 % worse against full rounds (it teaches less)
KAPPA_NEAR = 1.25  # an unmeasured config past capacity at log time + this many sd is served only as a probe
# (1.5 and 2 also emptied the overloaded Poisson rounds, but perturbed more runs: docs/benchmarks.md)
CONFIRM_ROUNDS = 3  # full rounds whose queue did not grow confirm a config near capacity that keeps up
CEILING_SE = 2.0  # the clock ceiling starts this many standard errors above a measured config's batch time
OUTLIER_LOG = float(np.log(1.3))  # a window 30 % off its config's earlier windows is held back


class EdpilotStrategy(Strategy):
    """Model-based search: a hardware posterior, the steady-state queue at the current traffic, safe exploration."""

    name = "edpilot"

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        self._configs = ctx.space.configs
        phi = features(ctx.space)
        steps = ctx.batching == "continuous"  # a window's batch time and energy are per decode step
        self.time = LogResponse(phi, *prior(ctx.space, **(STEP_TIME_SLOPES if steps else TIME_SLOPES)))
        self.energy = LogResponse(phi, *prior(ctx.space, **(STEP_ENERGY_SLOPES if steps else ENERGY_SLOPES)))
        freqs = np.array([c.freq_mhz or 0.0 for c in self._configs])
        self.idle = IdlePower(freqs, ctx.idle_power_w, [idle_key(c) for c in self._configs])
        if ctx.prior is not None:  # another board's run of the same model: its hardware answer as the prior
            self.time, self.energy = warm_start(
                ctx.prior, ctx.space, time=self.time, energy=self.energy, idle=self.idle
            )
        self.failed = np.zeros(len(self._configs), dtype=bool)
        self.behind = np.zeros(len(self._configs), dtype=bool)
        self.kept_rounds = np.zeros(len(self._configs))  # full rounds whose queue did not grow, per config
        self.pending: dict[int, Observation] = {}  # a window held back as a possible outlier, per config
        self.outliers = 0  # windows judged outliers and left out of the model
        self.backlog_requests = 0
        self.forecast = make_forecast(ctx.space, ctx.traffic, energy_scope=ctx.energy_scope, batching=ctx.batching)
        self._cache: dict[str, Outlook] = {}
        self._rho_cache: dict[float, np.ndarray] = {}
        self._window_requests = self._requests_per_window()
        self._probe: Config | None = None
        self._probe_batches = PROBE_BATCHES
        self._probed_last = False
        self._rounds = -1  # search rounds observed (the baseline round is round 0)
        self._phase_rounds = -1  # ... since the traffic last changed (a budget is per phase in serve)
        self._f_gap = _clock_gap(self._configs)
        self.ceiling = np.full(len(self._configs), np.inf)  # log batch time no unmeasured config can exceed
        self.lower = np.full(len(self._configs), -np.inf)  # ... nor fall below (a higher clock is never slower)
        self._vouched = vouched(ctx.prior, ctx.space)  # configs a twin's run measured: inside the trust region
        self._grid_pos = ctx.space.positions()

    # --- learning -------------------------------------------------------------------------------------------
    def observe(self, config: Config, obs: Observation) -> float | None:
        """Cost the window, and learn the config's batch time, batch energy and idle power from it."""
        cost = super().observe(config, obs)
        i = self.space.index(config)
        # a probe whose batches held a full round's requests (b ≥ half a round) is a full round
        full_round = config != self._probe or obs.requests >= self._window_requests[i]
        self._probe = None  # a probe is the proposal just made, not a later choice of the same config
        self._rounds += 1
        self._phase_rounds += 1
        if obs.backlog_requests is not None:
            self.backlog_requests = obs.backlog_requests
        if obs.failed:
            self.failed[i] = True
        elif obs.mean_batch_s > 0:
            for window in self._screen(i, obs):
                taught = taught_by(self.forecast, self._configs, i, window)  # continuous: slots it never filled
                learn_occupancy(self.forecast, i, taught, window)  # continuous: the step over occupancy
                for j in taught:
                    self._learn(j, self._configs[j], window)
            rho = self._own_rho()[i]
            if np.isnan(rho):  # a first window held back as a possible outlier: behind even without the largest
                # plausible one-off slowdown (a hiccup) in it
                slowdown = float(np.exp(SURPRISE_MAX_LOG))
                rho = float(utilisation(self.ctx.traffic, self.forecast.batch_of[i], obs.mean_batch_s / slowdown))
            if rho >= 1.0 or (not obs.keeps_up and rho >= RHO_BEHIND):
                self.behind[i] = True
            self.kept_rounds[i] += full_round and obs.keeps_up
        self._cache.clear()
        self._rho_cache.clear()
        return cost

    def _screen(self, i: int, obs: Observation) -> list[Observation]:
        """The windows to learn from now: `obs`, or nothing while it may be an outlier, or two that agree.

        A window is compared with its config's earlier windows, or — at a config measured for the first time —
        with the model's prediction there (mean ± sd); one off by more than OUTLIER_LOG and 4 sd is held back.
        """
        y = float(np.log(obs.mean_batch_s)) + occupancy_shift(self.forecast, i, obs)  # continuous: same occupancy
        batches = -(-obs.requests // self._configs[i].batch_size)
        noise = self.time.noise_var() / batches
        if self.time.windows[i] > 0:
            ref, ref_var = float(self.time.own_mean()[i]), self.time.noise_var() / self.time.batches[i]
        else:
            ref, ref_var = float(self.time.mean[i]), float(self.time.sd[i]) ** 2
        threshold = max(OUTLIER_LOG, 4.0 * float(np.sqrt(noise + ref_var)))
        off = abs(y - ref) > threshold
        held = self.pending.pop(i, None)
        if not off:
            self.outliers += held is not None
            return [obs]
        pair = max(OUTLIER_LOG, 4.0 * float(np.sqrt(2.0 * noise)))
        if (
            held is not None
            and abs(y - float(np.log(held.mean_batch_s)) - occupancy_shift(self.forecast, i, held)) <= pair
        ):
            return [held, obs]  # two windows agree: the config changed, not a hiccup
        self.outliers += held is not None
        self.pending[i] = obs
        return []

    def _learn(self, i: int, config: Config, obs: Observation) -> None:
        batches = -(-obs.requests // config.batch_size)
        self.time.add(i, obs.mean_batch_s, batches)
        if obs.energy_per_batch_j is not None and obs.energy_per_batch_j > 0:
            self.energy.add(i, obs.energy_per_batch_j, batches)
            if obs.power_w is not None:
                busy = busy_units(self.forecast, config, obs)
                self.idle.add(
                    config.freq_mhz or 0.0,
                    idle_j=obs.power_w * obs.window_s - busy * obs.energy_per_batch_j,
                    idle_s=obs.window_s - busy * obs.mean_batch_s,
                    others=idle_key(config),
                )
        self.time.fit()
        self.energy.fit()
        own = np.where(self.time.batches > 0, self.time.own_mean(), np.inf)
        se = np.sqrt(self.time.noise_var() / np.maximum(self.time.batches, 1.0))
        self.ceiling = np.min((own + CEILING_SE * se)[None, :] + self._f_gap, axis=1)
        above = np.isfinite(self._f_gap) & (self.time.batches > 0)[None, :]
        self.lower = np.max(np.where(above, (own - CEILING_SE * se)[None, :], -np.inf), axis=1)

    def set_traffic(self, traffic: Traffic) -> None:
        """Re-rank every config at the new traffic from the hardware model: nothing is measured again."""
        super().set_traffic(traffic)
        self.forecast = make_forecast(
            self.space, traffic, energy_scope=self.ctx.energy_scope, batching=self.ctx.batching, previous=self.forecast
        )
        self.behind[:] = False
        self.kept_rounds[:] = 0
        self._phase_rounds = 0
        self._window_requests = self._requests_per_window()
        self._cache.clear()
        self._rho_cache.clear()

    # --- predictions ----------------------------------------------------------------------------------------
    def outlook(self, kind: str = "mean") -> Outlook:
        """Predicted steady-state cost, latency, power of every config: at the posterior mean, at a measured
        config's own windows' mean ('own'), optimistic ('lcb', with the inherited backlog priced), pessimistic
        ('ucb', for the limits of the choice), or under a one-off deviation of the heavy-tailed prior ('surprise')."""
        if kind not in self._cache:
            shift = {"mean": 0.0, "lcb": KAPPA, "ucb": -KAPPA_SAFE, "surprise": 0.0, "own": 0.0}[kind]
            log_s = np.minimum(self.time.mean - shift * self.time.sd, self.ceiling)
            log_e = self.energy.mean - shift * self.energy.sd
            if kind == "own":
                log_s, log_e = self.time.measured_or_mean(), self.energy.measured_or_mean()
            if kind == "surprise":
                log_s, log_e = log_s - self.surprise_log(), log_e - self.surprise_log()
            s = np.exp(log_s)
            extra_s = 0.0
            if kind == "lcb" and self.backlog_requests > 0 and self.ctx.traffic.arrivals != "saturated":
                n = self._window_requests
                b = self.forecast.batch_of
                excess = np.maximum(self.backlog_requests - b, 0.0)  # fewer than b queued is a partial batch
                rate = self.ctx.traffic.rate_per_s
                extra_s = backlog_delay_s(excess, b, s, rate) / (n * BACKLOG_HORIZON_ROUNDS)
            self._cache[kind] = self.forecast.outlook(
                self.ctx.objective,
                service_s=s,
                energy_per_batch_j=np.exp(log_e),
                idle_power_w=self.idle.predict(),
                with_p95=self.ctx.slo_p95_s is not None and kind in ("mean", "lcb", "ucb"),
                extra_latency_s=extra_s,
            )
        return self._cache[kind]

    def _requests_per_window(self) -> np.ndarray:
        """Requests of a full round per config at the current traffic."""
        return np.array([self.ctx.traffic.window_requests(c.batch_size) for c in self._configs], dtype=float)

    def surprise_log(self) -> float:
        """A plausible one-off deviation (log units) from the smooth surface: the SURPRISE_LEVEL quantile of a
        Cauchy prior with the offsets' scale τ, at most SURPRISE_MAX_LOG."""
        tau = float(np.sqrt(self.time.tau2))
        return min(SURPRISE_MAX_LOG, tau * float(np.tan(np.pi * (0.5 - SURPRISE_LEVEL))))

    def _own_rho(self) -> np.ndarray:
        """Utilisation from each config's own windows (nan where unmeasured)."""
        own = np.where(self.time.batches > 0, np.exp(self.time.own_mean()), np.nan)
        return utilisation(self.ctx.traffic, self.forecast.batch_of, own)

    def _rho(self, sd: float) -> np.ndarray:
        """Utilisation: a measured config's own (its windows' mean batch time), an unmeasured one's at log batch
        time + sd posterior standard deviations. A measured config that falls behind after all is dropped by the
        runner at the next batch boundary and then here (`behind`)."""
        if sd not in self._rho_cache:
            s = np.exp(np.minimum(np.maximum(self.time.mean + sd * self.time.sd, self.lower), self.ceiling))
            model = utilisation(self.ctx.traffic, self.forecast.batch_of, s)
            self._rho_cache[sd] = np.where(self.time.batches > 0, self._own_rho(), model)
        return self._rho_cache[sd]

    def within_limits(self, view: str = "mean") -> np.ndarray:
        """Configs that have not failed and are predicted to meet `--slo-p95` / `--power-cap` (the filter is
        dropped when nothing would pass it), at the posterior mean ('mean'); exploring ('lcb'), an unmeasured config
        at its optimistic batch time and energy, so that one the smooth model puts past a limit is still measured
        when it may meet it; choosing ('ucb'), every config at its pessimistic ones, so that a limit a config meets
        only within its windows' noise is not counted as met."""
        ok = ~self.failed
        if not self.time.windows.any() or (self.ctx.slo_p95_s is None and self.ctx.power_cap_w is None):
            return ok
        mean = self.outlook("mean")
        p95, power = mean.p95_latency_s, mean.power_w
        if view != "mean":
            other = self.outlook(view)
            keep = self.time.windows > 0 if view == "lcb" else np.zeros(len(self._configs), dtype=bool)
            p95, power = np.where(keep, p95, other.p95_latency_s), np.where(keep, power, other.power_w)
        within = ok.copy()
        if self.ctx.slo_p95_s is not None:
            within &= p95 <= self.ctx.slo_p95_s
        if self.ctx.power_cap_w is not None:
            within &= power <= self.ctx.power_cap_w
        return within if within.any() else ok

    def safe(self, *, optimistic: bool = False) -> np.ndarray:
        """Configs that may be served a full round: within the limits (judged `optimistic`ally when exploring),
        not dropped, and keeping up — a measured config by its own windows' mean batch time, an unmeasured one at
        its pessimistic batch time."""
        return self.within_limits("lcb" if optimistic else "mean") & ~self.behind & (self._rho(KAPPA_SAFE) < 1.0)

    def near(self) -> np.ndarray:
        """Unmeasured configs near capacity whose full round is a probe's length: they keep up at their
        pessimistic batch time (KAPPA_SAFE sd) but not at KAPPA_NEAR sd, and a full round is at most PROBE_BATCHES
        batches. Such a round is served as a bounded probe — its backlog priced and capped, not on top of a backlog
        or right after a probe — and, serving the whole round, it still counts as one."""
        short = np.ceil(self._window_requests / self.forecast.batch_of) <= PROBE_BATCHES
        near: np.ndarray = (self.time.batches == 0) & short & (self._rho(KAPPA_NEAR) >= 1.0)
        return near

    def _near_probes(
        self, candidates: np.ndarray, inc: int, *, may_probe: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The `near` configs among `candidates`, which of them a bounded probe may serve now (its backlog judged
        at KAPPA_NEAR sd), and its batches."""
        near = self.near() & candidates
        ok, batches = self._bounded(near, inc, kappa=KAPPA_NEAR)
        return near, ok & may_probe, batches

    # --- choosing -------------------------------------------------------------------------------------------
    def round_batches(self, config: Config) -> int | None:
        """PROBE_BATCHES for a probe just proposed, else a full round."""
        return self._probe_batches if config == self._probe else None

    def propose(self) -> Config:
        """Trust-region LCB among safe configs, a bounded probe when one could win, else the exploration floor,
        else the incumbent. An incumbent with a window held back as a possible outlier is re-measured first."""
        self._probe = None
        if not self.time.windows.any():
            return self.ctx.baseline
        incumbent = self.best()
        inc = self.space.index(incumbent)
        after_probe, self._probed_last = self._probed_last, False
        if inc in self.pending:
            return incumbent  # re-measure a possible outlier before anything switches
        better = [j for j, o in self.pending.items() if np.log(o.mean_batch_s) < self.time.mean[j]]
        if better and self._held_keeps_up(better[0]):
            return self._configs[better[0]]  # a window better than predicted: believe it once it is repeated
        if self._final_round():
            return self._exploit()
        # after a probe, a full round where the config keeps up; and no probe on top of a backlog
        may_probe = not after_probe and self.backlog_requests <= PROBE_QUEUE_BATCHES * incumbent.batch_size
        safe = self.safe(optimistic=True)
        lcb = self.outlook("lcb").cost
        mean = self.outlook("mean").cost
        target = mean[inc] * (1.0 - IMPROVE) if np.isfinite(mean[inc]) else np.inf
        promising = safe & (lcb < target)
        promising[inc] = False
        if self._rounds % FLOOR_EVERY == FLOOR_EVERY - 1:
            floor = self._floor_pick(safe, inc, mean[inc], may_probe=may_probe)
            if floor is not None:
                return self._take_floor(floor)
        probes, probe_batches = self._probes(lcb, target, inc)
        probes &= may_probe
        near, near_ok, near_batches = self._near_probes(promising, inc, may_probe=may_probe)
        promising &= ~near
        probes |= near_ok
        probe_batches = np.where(near_ok, near_batches, probe_batches)
        handicap = np.where(near_ok, 1.0, PROBE_HANDICAP)
        pick = self._in_trust_region(promising | probes, np.where(probes, handicap * lcb, lcb), inc)
        if pick is not None and probes[pick]:
            self._probe, self._probe_batches, self._probed_last = self._configs[pick], int(probe_batches[pick]), True
            return self._probe
        # a confirmed config whose optimistic gain is below the floor's margin waits for a floor full round where
        # one is plausible (an unconfirmed one is measured: `best` may need it; a floor probe, riskier for the
        # users served, does not take its place)
        hair = pick is not None and bool(self._confirmed()[pick]) and lcb[pick] > mean[inc] * (1.0 - FLOOR_MARGIN)
        if pick is not None and not hair:
            return self._configs[pick]
        floor = self._floor_pick(safe, inc, mean[inc], may_probe=may_probe)
        if floor is not None and (pick is None or floor[1] is None):
            return self._take_floor(floor)
        return incumbent if pick is None else self._configs[pick]

    def _final_round(self) -> bool:
        """Whether the next round is the last of the budget (of this traffic's phase): no probe, no floor."""
        return self.ctx.budget is not None and self._phase_rounds + 1 >= self.ctx.budget

    def _exploit(self) -> Config:
        """The last round of a budget: the safe config of lowest expected cost (a measured one by its own windows),
        so the budget ends on a full round that `best` can choose, never on a probe."""
        measured = self.time.windows > 0
        cost = np.where(measured, self.outlook("own").cost, self.outlook("mean").cost)
        pool = self.safe() & (~measured | (self._own_rho() < 1.0))
        if not pool.any():
            return self.best()
        return self._configs[int(np.argmin(np.where(pool, cost, np.inf)))]

    def _take_floor(self, floor: tuple[int, int | None]) -> Config:
        """The floor's config, marked as a probe when it is one."""
        if floor[1] is not None:
            self._probe, self._probe_batches, self._probed_last = self._configs[floor[0]], floor[1], True
        return self._configs[floor[0]]

    def _held_keeps_up(self, j: int) -> bool:
        """Whether the window held back at config `j` kept up (its batch time within b/λ)."""
        held = self.pending[j]
        rho = utilisation(self.ctx.traffic, self.forecast.batch_of[j], held.mean_batch_s)
        return bool(rho < 1.0) and held.keeps_up

    def _in_trust_region(self, promising: np.ndarray, cost: np.ndarray, inc: int) -> int | None:
        """The lowest-cost promising config within a Chebyshev grid radius around the incumbent: 2^(k+1) after k
        search rounds, or the smallest radius that holds a promising config — or one a twin's run measured
        (`--prior`); None when none is promising."""
        if not promising.any():
            return None
        dist = np.abs(self._grid_pos - self._grid_pos[inc]).max(axis=1)
        radius = max(int(dist[promising].min()), 2 ** min(self._rounds + 1, 16))
        region = promising & ((dist <= radius) | self._vouched)
        return int(np.argmin(np.where(region, cost, np.inf)))

    def _probes(self, lcb: np.ndarray, target: float, inc: int) -> tuple[np.ndarray, np.ndarray]:
        """Configs that may be measured as a bounded probe, and the batches each would serve: unmeasured ones that
        keep up only optimistically, that the model puts at most PROBE_RHO_MAX past capacity, and that could beat
        the incumbent (`_bounded`)."""
        candidates = (
            (self.time.windows == 0) & (self._rho(-KAPPA) < 1.0) & (self._rho(0.0) < PROBE_RHO_MAX) & (lcb < target)
        )
        return self._bounded(candidates, inc)

    def _bounded(self, candidates: np.ndarray, inc: int, *, kappa: float = KAPPA_SAFE) -> tuple[np.ndarray, np.ndarray]:
        """Which of `candidates` (that may not keep up at their pessimistic batch time, log time + `kappa` sd) a
        bounded probe may measure, and its batches: within the limits and not dropped, serving the most batches
        (2, else 1) whose backlog at the pessimistic batch time is at most PROBE_BACKLOG_BATCHES incumbent batches,
        and only if its expected backlog, drained by the incumbent, adds at most PROBE_PRICE × the incumbent's mean
        latency to the next round."""
        batches = np.full(len(self._configs), PROBE_BATCHES)
        pessimistic = self._rho(kappa)
        behind_for_sure = utilisation(self.ctx.traffic, self.forecast.batch_of, np.exp(self.lower)) >= 1.0
        candidates = candidates & self.within_limits() & ~self.behind & ~behind_for_sure & (pessimistic >= 1.0)
        if self.ctx.traffic.arrivals == "saturated" or not candidates.any():
            return np.zeros(len(self._configs), dtype=bool), batches
        b = self.forecast.batch_of
        cap = PROBE_BACKLOG_BATCHES * b[inc]
        batches = np.where(PROBE_BATCHES * b * (pessimistic - 1.0) <= cap, PROBE_BATCHES, 1)
        candidates &= b * (pessimistic - 1.0) <= cap
        left = batches * b * np.maximum(self._rho(0.0) - 1.0, 0.0)  # arrivals beyond what the probe serves
        s_inc = float(np.exp(self.time.own_mean()[inc])) if self.time.batches[inc] > 0 else np.inf
        n_inc = self.ctx.traffic.window_requests(self._configs[inc].batch_size)
        rate = self.ctx.traffic.rate_per_s
        price_s = backlog_delay_s(left, b[inc], s_inc, rate) / n_inc
        candidates &= price_s <= PROBE_PRICE * self.outlook("mean").mean_latency_s[inc]
        return candidates, batches

    def _floor_pick(
        self, safe: np.ndarray, inc: int, incumbent_cost: float, *, may_probe: bool
    ) -> tuple[int, int | None] | None:
        """(config, probe batches or None) of the exploration floor: the unmeasured config whose cost under a
        plausible one-off deviation beats the incumbent's by FLOOR_MARGIN, lowest such cost first — a full round
        where it keeps up at its pessimistic batch time, a bounded probe where it may not; None when none."""
        target = incumbent_cost * (1.0 - FLOOR_MARGIN)
        plausible = self.outlook("surprise").cost
        candidates = (self.time.windows == 0) & (plausible < target)
        probes, batches = self._bounded(candidates & ~safe, inc)
        near, near_ok, near_batches = self._near_probes(candidates & safe, inc, may_probe=may_probe)
        probes = (probes & may_probe) | near_ok
        batches = np.where(near_ok, near_batches, batches)
        candidates &= (safe & ~near) | probes
        if not candidates.any():
            return None
        pick = int(np.argmin(np.where(candidates, plausible, np.inf)))
        return pick, int(batches[pick]) if probes[pick] else None

    def _confirmed(self) -> np.ndarray:
        """Measured configs that keep up by more than their own windows' standard error of batch time, or on the
        mean of CONFIRM_ROUNDS full rounds whose queue did not grow."""
        se = np.sqrt(self.time.noise_var() / np.maximum(self.time.batches, 1.0))
        rho = self._own_rho()
        return (rho * np.exp(se) < 1.0) | ((rho < 1.0) & (self.kept_rounds >= CONFIRM_ROUNDS))

    def best(self) -> Config:
        """The measured config with the lowest predicted steady-state cost among those that keep up — by more than
        the standard error of their own windows' batch time, so that two batches measured at 99 % of capacity do
        not make the choice — and meet the limits; with none, the safe config predicted best; with none safe, the
        config of highest throughput."""
        served = np.array([c in self.arms for c in self._configs])  # a window shared by `taught_by` is not served
        measured = (self.time.windows > 0) & served & ~self.failed
        if not measured.any():
            return super().best()
        keeping = self.within_limits("ucb") & ~self.behind & (self._rho(KAPPA_SAFE) < 1.0)
        pool = measured & keeping & self._confirmed()
        if not pool.any():
            pool = keeping
        if not pool.any():
            s = np.exp(self.time.measured_or_mean())
            throughput = np.where(~self.failed, self.forecast.batch_of / s, -np.inf)
            return self._configs[int(np.argmax(throughput))]
        cost = np.where(pool & measured, self.outlook("own").cost, np.where(pool, self.outlook("mean").cost, np.inf))
        return self._configs[int(np.argmin(cost))]


def _clock_gap(configs: list[Config]) -> np.ndarray:
    """log(f_k / f_j) where config k has config j's batch size and other knobs and a clock at least j's, else inf.

    A batch at a lower clock takes at most f_k / f_j times as long (a compute-bound batch scales as 1/f, a
    memory-bound one less): with k measured, that bounds j's batch time whatever a smooth fit says (a cliff
    elsewhere on the grid bends it). Without a clock knob, only the config itself.
    """
    freqs = np.array([c.freq_mhz or 0.0 for c in configs])
    ids: dict[tuple[object, ...], int] = {}
    keys = np.array(
        [ids.setdefault((c.batch_size, *(kv for kv in c.knobs if kv[0] != "gpu_mhz")), len(ids)) for c in configs]
    )
    gap = np.full((len(configs), len(configs)), np.inf)
    np.fill_diagonal(gap, 0.0)
    if (freqs > 0).all():
        ratio = np.log(freqs[None, :] / freqs[:, None])
        gap = np.where((keys[None, :] == keys[:, None]) & (ratio >= 0.0), ratio, np.inf)
    return gap
