"""Warm start from another board's run (`--prior RUN.jsonl`): its hardware answer as this board's prior.

Boards of one kind running one model answer alike: the same batch time, batch energy and idle power at each
config, up to a few percent of silicon and thermals. Another board's run log measured those three at the
configs it visited; they do not depend on the traffic, so they carry over to this board at any rate. Its EDP,
latency and costs do depend on its traffic and are not read.

    prior = read_prior("board-a.jsonl")          # ConfigError: missing, unreadable, not a run log
    prior = prior.matched(this_run_header)       # ConfigError: another model, engine, board or lengths
    time, energy = warm_start(prior, space, time=time, energy=energy, idle=idle)

The other board's windows are fitted with this board's own model (`LogResponse`, same features and priors);
its posterior per config — tight where it measured, wide elsewhere — becomes the centre of this board's
model (`WarmResponse`), which allows one board-wide shift (`SHIFT_SD`, learned from the first windows, the
baseline's included) and a per-config difference of `BOARD_SD` on top. That spread is learned from this
board's own windows too (empirical Bayes, as `LogResponse` learns its offsets): when the twin turns out to be
wrong, its prior loosens. Nothing of the prior counts as measured here: the choice (`best`) stays among configs
this board served.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edpilot.errors import ConfigError
from edpilot.records import RunHeader
from edpilot.runlog import read_run_log
from edpilot.search.hardware import IdlePower, LogResponse, idle_key
from edpilot.space import Axis, Config, ConfigSpace

BOARD_SD = 0.05  # assumed: per-config difference (log units) between two boards of one kind (the twin benchmark's)
BOARD_PRIOR_DOF = 4.0  # weight of BOARD_SD against this board's residuals from the prior
SHIFT_SD = 0.1  # assumed: a whole board slower or hungrier than its twin (log units), before any window
TILT_SD = 0.03  # assumed: a smooth difference over the grid (per unit of the centred log features)
LENGTH_TOLERANCE = 0.1  # mean prompt and output lengths may differ by 10 % between the two runs
ENGINE_KEYS = ("backend", "dtype", "quantisation", "decode")  # what makes two engines answer alike
DEVICE_KEYS = ("backend", "board", "runtime", "gpu", "total_rails")


@dataclass(frozen=True)
class PriorWindow:
    """One window of the other board: its config, batches served, mean batch time (s), energy per batch (J), and
    the energy (J) and time (s) the board spent idle between batches (None where the window has no meter)."""

    config: Config
    batches: int
    mean_batch_s: float
    energy_per_batch_j: float | None
    idle_j: float | None
    idle_s: float | None


@dataclass(frozen=True)
class HardwarePrior:
    """Another board's traffic-free windows, with the header of the run that measured them.

    `ignored_windows` counts windows at configs outside this run's grid (after `matched`); `failed_windows`
    those that measured nothing (every request failed).
    """

    source: str
    header: RunHeader
    windows: tuple[PriorWindow, ...]
    ignored_windows: int = 0
    failed_windows: int = 0
    configs: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "configs", len({w.config for w in self.windows}))

    def matched(self, header: RunHeader) -> HardwarePrior:
        """This prior for the run described by `header`: ConfigError (one line) when the two runs differ in model,
        engine, board or request lengths; windows at configs outside its grid are dropped and counted."""
        differences = mismatches(self.header, header)
        if differences:
            raise ConfigError(f"--prior {self.source} is not a run of this setting: {'; '.join(differences)}")
        axes = tuple(Axis(name, tuple(levels)) for name, levels in header.grid_levels().items())
        grid = set(ConfigSpace(axes, tuple(header.batch_sizes)).configs)
        kept = tuple(w for w in self.windows if w.config in grid)
        if not kept:
            raise ConfigError(
                f"--prior {self.source}: none of its {len(self.windows)} windows is at a config of this grid"
            )
        return replace(self, windows=kept, ignored_windows=self.ignored_windows + len(self.windows) - len(kept))

    def describe(self) -> dict[str, Any]:
        """What the run log's header records about the warm start."""
        return {
            "source": self.source,
            "device": self.header.device_name,
            "windows": len(self.windows),
            "configs": self.configs,
            "ignored_windows": self.ignored_windows,
            "failed_windows": self.failed_windows,
        }


def read_prior(path: str | os.PathLike[str]) -> HardwarePrior:
    """The traffic-free windows of the run log at `path` (`tune --output`, `serve --output`); ConfigError (one
    line) when it is missing, unreadable, not a run log, has no header, or no window measured anything."""
    try:
        data = read_run_log(path)
    except ConfigError as exc:
        raise ConfigError(f"--prior: {exc}") from None
    if data.header is None:
        raise ConfigError(f"--prior {path} has no run header: cannot check it ran the same model and board")
    windows, failed = [], 0
    for record in data.rounds:
        obs, config = record.obs, record.config
        if obs.failed or not obs.mean_batch_s > 0:
            failed += 1
            continue
        batches = -(-obs.requests // config.batch_size)
        energy = obs.energy_per_batch_j if obs.energy_per_batch_j is not None and obs.energy_per_batch_j > 0 else None
        idle_j = idle_s = None
        if energy is not None and obs.power_w is not None:
            idle_j = obs.power_w * obs.window_s - batches * energy
            idle_s = obs.window_s - batches * obs.mean_batch_s
        windows.append(PriorWindow(config, batches, obs.mean_batch_s, energy, idle_j, idle_s))
    if not windows:
        raise ConfigError(f"--prior {path}: every one of its {failed} windows failed; nothing to start from")
    return HardwarePrior(str(path), data.header, tuple(windows), failed_windows=failed)


def mismatches(prior: RunHeader, run: RunHeader) -> list[str]:
    """What differs between the prior's run and this one, each as 'what: there vs here' (empty: they match).

    The model and the engine's and device's kind must agree (an engine of the library `Tuner` is the caller's
    own, and is not compared), static or continuous batching too, and the mean prompt and output lengths within
    LENGTH_TOLERANCE. The traffic, objective and grid may differ.
    """
    out = []
    if prior.model != run.model:
        out.append(f"model {prior.model} there, {run.model} here")
    if run.engine.get("backend") != "library":
        out += _differ("engine", prior.engine, run.engine, ENGINE_KEYS)
    device_keys = DEVICE_KEYS if "gpu" in run.device else (*DEVICE_KEYS, "name")  # an NVML name is an index
    out += _differ("device", prior.device, run.device, device_keys)
    there, here = prior.extra.get("batching", "static"), run.extra.get("batching", "static")
    if there != here:
        out.append(f"batching {there} there, {here} here")
    for what, a, b in (
        ("output tokens", prior.output_tokens, run.output_tokens),
        ("prompt tokens", prior.extra.get("prompt_tokens"), run.extra.get("prompt_tokens")),
    ):
        if isinstance(a, int | float) and isinstance(b, int | float) and not _close(a, b):
            out.append(f"{what} {a:g} there, {b:g} here")
    return out


def _differ(what: str, there: dict[str, Any], here: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [
        f"{what} {key} {there.get(key)} there, {here.get(key)} here"
        for key in keys
        if (key in there or key in here) and there.get(key) != here.get(key)
    ]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=LENGTH_TOLERANCE)


class WarmResponse(LogResponse):
    """`LogResponse` centred on another board's posterior: log y = base + φ·w + offset, with w the smooth
    difference between the boards (SHIFT_SD for the level, TILT_SD for the rest) and the offset's variance the
    other board's own uncertainty there plus this board's difference (BOARD_SD to start, then learned).

    `tau2`, which the strategy reads as the scale of a one-off deviation from the smooth surface (its exploration
    floor), is this board's difference plus the other board's spread around its smooth surface (`spread_var`):
    a config the other board never measured may hide as much there as it did.
    """

    def __init__(self, phi: np.ndarray, base_mean: np.ndarray, base_sd: np.ndarray, *, spread_var: float) -> None:
        weights_sd = np.full(phi.shape[1], TILT_SD)
        weights_sd[0] = SHIFT_SD
        super().__init__(phi, np.zeros(phi.shape[1]), weights_sd)
        self.base, self.base_var = base_mean, base_sd**2
        self.spread_var = spread_var  # the other board's configs around its smooth surface (its τ²)
        self.board_var = BOARD_SD**2
        self.tau2 = self.board_var + spread_var
        self.mean = base_mean.copy()
        smooth_var = ((phi * weights_sd**2) * phi).sum(axis=1)
        self.sd = np.sqrt(self.base_var + self.board_var + smooth_var)

    def fit(self) -> None:
        """Recompute `mean` and `sd` (log units) of every config from this board's windows and the prior."""
        seen, sigma2, ybar, data_var = self._seen()
        if seen.size == 0:
            return
        offset_var = self.base_var + self.board_var
        w_mean, w_cov = self._weights(seen, ybar - self.base[seen], offset_var[seen] + data_var)
        smooth = self.base + self.phi @ w_mean
        resid2 = (ybar - smooth[seen]) ** 2 - data_var - self.base_var[seen]
        self.board_var = (BOARD_PRIOR_DOF * BOARD_SD**2 + float(np.sum(np.maximum(resid2, 0.0)))) / (
            BOARD_PRIOR_DOF + seen.size
        )
        self.tau2 = self.board_var + self.spread_var
        offset_var = self.base_var + self.board_var
        self._shrink(smooth, ((self.phi @ w_cov) * self.phi).sum(axis=1), offset_var, sigma2)


def warm_start(
    prior: HardwarePrior, space: ConfigSpace, *, time: LogResponse, energy: LogResponse, idle: IdlePower
) -> tuple[LogResponse, LogResponse]:
    """Models of batch time and batch energy centred on `prior`'s board, and its idle power fed into `idle`.

    `time` and `energy` are this board's fresh models: the prior's windows are fitted with copies of them (same
    features and priors), whose posteriors centre the `WarmResponse`s returned. Each idle level of the prior
    weighs as one window of this board, so this board's own windows outweigh it from the first.
    """
    index = {c: i for i, c in enumerate(space.configs)}
    mine = [(index[w.config], w) for w in prior.windows if w.config in index]
    fitted_time, fitted_energy = _copy(time), _copy(energy)
    idle_levels: dict[tuple[float, Any], list[tuple[float, float]]] = defaultdict(list)
    for i, w in mine:
        fitted_time.add(i, w.mean_batch_s, w.batches)
        if w.energy_per_batch_j is not None:
            fitted_energy.add(i, w.energy_per_batch_j, w.batches)
        if w.idle_j is not None and w.idle_s is not None and w.idle_s > 0:
            idle_levels[(w.config.freq_mhz or 0.0, idle_key(w.config))].append((w.idle_j, w.idle_s))
    for (level_mhz, others), stretches in idle_levels.items():
        joules, seconds = np.mean(stretches, axis=0)
        idle.add(level_mhz, idle_j=float(joules), idle_s=float(seconds), others=others)
    return _centred(fitted_time, time), _centred(fitted_energy, energy)


def vouched(prior: HardwarePrior | None, space: ConfigSpace) -> np.ndarray:
    """Per config of `space`, whether `prior`'s board measured it (all False without a prior): where the other
    board's windows vouch for the model, a trust region need not keep the search away."""
    seen = set() if prior is None else {w.config for w in prior.windows}
    return np.array([c in seen for c in space.configs], dtype=bool)


def _copy(response: LogResponse) -> LogResponse:
    """A fresh, empty response with the features and weight priors of `response`."""
    return LogResponse(response.phi, response.prior_mean, 1.0 / np.sqrt(response.prior_prec))


def _centred(fitted: LogResponse, cold: LogResponse) -> LogResponse:
    """A WarmResponse on `fitted`'s posterior; `cold` itself where the prior has no window (no energy meter)."""
    if not fitted.windows.any():
        return cold
    fitted.fit()
    return WarmResponse(fitted.phi, fitted.mean, fitted.sd, spread_var=fitted.tau2)
