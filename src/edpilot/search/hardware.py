"""The hardware's part of a round's cost: batch time, batch energy and idle power over (f, b), with uncertainty.

These do not depend on the traffic and a window measures them to 1–2 %, so they are what the search learns.
`LogResponse` is a Bayesian linear regression of a log quantity on a few smooth features of log f and log b,
plus a per-config offset (a hierarchical random effect) that each config's own windows pin down: the smooth
part carries what neighbours teach, the offset absorbs what is not smooth (a throttling step, a memory
cliff). Closed form, numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edpilot.space import Config, ConfigSpace

OFFSET_SD = 0.1  # assumed: prior spread (log units) of a config around the smooth surface (benchmark: 0.1 over 0.05)
OFFSET_PRIOR_DOF = 4.0  # weight of OFFSET_SD against the residuals of measured configs
NOISE_SD = 0.05  # assumed: per-batch noise (log units) before any config is measured twice
NOISE_PRIOR_DOF = 3.0
CURVATURE_SD = 0.3


def axis_columns(space: ConfigSpace) -> tuple[list[str], np.ndarray]:
    """The centred log columns of the searched axes: batch, then each knob axis in space order, each with more
    than one level; x = log(value) − mean log of the axis's levels. Names ('batch', 'gpu_mhz', ...) and values."""
    configs = space.configs
    names, cols = [], []
    if len(space.batch_sizes) > 1:
        names.append("batch")
        cols.append(np.log([c.batch_size for c in configs]) - np.mean(np.log(space.batch_sizes)))
    for axis in space.axes:
        if axis.searched:
            levels = np.asarray(axis.levels, dtype=float)
            names.append(axis.name)
            cols.append(np.log([float(c.level(axis.name)) for c in configs]) - np.mean(np.log(levels)))  # type: ignore[arg-type]
    return names, np.array(cols).reshape(len(cols), len(configs))


def features(space: ConfigSpace) -> np.ndarray:
    """Smooth features per config: 1, each axis's x, each x², then every pairwise product x_i·x_j (i < j), with
    x = log(value) − mean log of the axis, axes in the order batch, then the knob axes of the space.

    On (GPU, batch) this is 1, x_b, x_f, x_b², x_f², x_b·x_f. Centred on the grid, the curvature terms weigh the
    baseline's corner and the opposite corner alike; anchored at the top level, they left the far corner several
    log units of prior spread, so after the baseline alone the search chased corners.

    Axes with a single value (one-frequency grids, read-only devices) contribute no columns.
    """
    _, x = axis_columns(space)
    k = len(x)
    cross = [x[i] * x[j] for i in range(k) for j in range(i + 1, k)]
    return np.column_stack([np.ones(len(space)), *x, *(x**2), *cross])


def prior(space: ConfigSpace, *, slope_b: float, slope_f: float, slope_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Prior mean and sd of the weights, in the column order of `features`.

    The slope of batch is `slope_b`; of every knob axis `slope_f`, the GPU's (a higher memory clock, like a higher
    GPU clock, shortens a batch: decode is bandwidth-bound; a decode level, like the GPU's, shortens decode).
    Curvature and the cross terms get sd CURVATURE_SD.
    """
    names, _ = axis_columns(space)
    slopes = [slope_b if n == "batch" else slope_f for n in names]
    k = len(names)
    pairs = k * (k - 1) // 2
    mean = [0.0, *slopes, *([0.0] * (k + pairs))]
    sd = [10.0, *([slope_sd] * k), *([CURVATURE_SD] * (k + pairs))]
    return np.array(mean), np.array(sd)


class LogResponse:
    """Posterior of log y per config: smooth regression + per-config offsets, fed one window at a time."""

    def __init__(self, phi: np.ndarray, prior_mean: np.ndarray, prior_sd: np.ndarray) -> None:
        self.phi, self.prior_mean, self.prior_prec = phi, prior_mean, 1.0 / prior_sd**2
        k = len(phi)
        self.batches = np.zeros(k)  # batches seen per config (each window's mean weighs by its batches)
        self.sum_y = np.zeros(k)
        self.sum_yy = np.zeros(k)
        self.windows = np.zeros(k)
        self.mean = np.zeros(k)
        self.sd = np.ones(k)
        self.tau2 = OFFSET_SD**2

    def add(self, index: int, value: float, batches: int) -> None:
        """One window's mean (> 0) at config `index`, averaged over `batches` batches."""
        y = float(np.log(value))
        self.batches[index] += batches
        self.sum_y[index] += batches * y
        self.sum_yy[index] += batches * y * y
        self.windows[index] += 1

    def own_mean(self) -> np.ndarray:
        """Log y per config from its own windows alone (batch-weighted); 0 where unmeasured."""
        return np.divide(self.sum_y, self.batches, out=np.zeros_like(self.sum_y), where=self.batches > 0)

    def measured_or_mean(self) -> np.ndarray:
        """Log y per config: a measured config's own windows' mean, else the posterior mean."""
        return np.where(self.batches > 0, self.own_mean(), self.mean)

    def noise_var(self) -> float:
        """Per-batch noise variance (log units²), pooled over configs measured more than once."""
        seen = self.windows > 0
        ybar = self.sum_y[seen] / self.batches[seen]
        within = float(np.sum(self.sum_yy[seen] - self.batches[seen] * ybar**2))
        dof = float(np.sum(self.windows[seen] - 1))
        return (NOISE_PRIOR_DOF * NOISE_SD**2 + max(within, 0.0)) / (NOISE_PRIOR_DOF + dof)

    def _seen(self) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """The measured configs, the noise variance, and each measured config's mean and its variance."""
        seen = np.flatnonzero(self.windows > 0)
        sigma2 = self.noise_var()
        batches = self.batches[seen]
        return seen, sigma2, self.sum_y[seen] / batches, sigma2 / batches

    def _shrink(
        self, smooth: np.ndarray, smooth_var: np.ndarray, offset_var: np.ndarray | float, sigma2: float
    ) -> None:
        """Set `mean` and `sd`: each config's own windows shrunk towards the smooth surface by the offsets' spread."""
        prec = 1.0 / offset_var + self.batches / sigma2
        shrink = (1.0 / offset_var) / prec
        self.mean = shrink * smooth + (1 - shrink) * self.own_mean()
        self.sd = np.sqrt(1.0 / prec + shrink**2 * smooth_var)

    def fit(self) -> None:
        """Recompute `mean` and `sd` (log units) of every config."""
        seen, sigma2, ybar, data_var = self._seen()
        if seen.size == 0:
            return
        # Empirical Bayes: the offsets' spread from the residuals of the last fit (one pass per window).
        w_mean, w_cov = self._weights(seen, ybar, self.tau2 + data_var)
        resid2 = (ybar - self.phi[seen] @ w_mean) ** 2 - data_var
        tau2 = (OFFSET_PRIOR_DOF * OFFSET_SD**2 + float(np.sum(np.maximum(resid2, 0.0)))) / (
            OFFSET_PRIOR_DOF + seen.size
        )
        self.tau2 = tau2
        self._shrink(self.phi @ w_mean, ((self.phi @ w_cov) * self.phi).sum(axis=1), tau2, sigma2)

    def _weights(self, seen: np.ndarray, ybar: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.phi[seen]
        prec = np.diag(self.prior_prec) + x.T @ (x / var[:, None])
        cov = np.linalg.inv(prec)
        mean = cov @ (self.prior_prec * self.prior_mean + x.T @ (ybar / var))
        return mean, cov


def idle_key(config: Config) -> tuple[tuple[str, float], ...]:
    """What idle power depends on besides the GPU clock: the config's other device knobs (the memory clock)."""
    return tuple((n, level) for n, level in config.device_levels().items() if n != "gpu_mhz")


class IdlePower:
    """Device power (W) between batches per frequency: given, or learned from the windows' idle stretches.

    Each level's idle energy over its idle time, fitted over f weighted by idle time: a parabola once three
    levels have idle data (a pinned idle GPU's power is flat at the voltage floor, then rises with f·V²: a line
    through the extremes overstates the middle levels, which at low rates are mostly idle), bent upward only — a
    fit that curves down falls back to a line; a line with two levels; a constant with one; 0 before any.

    `others[i]` names config i's other device knobs (`idle_key`: a lower memory clock idles lower): each group
    is fitted over f from its own idle stretches, and a group without any uses the fit over every group's.
    """

    def __init__(
        self, freqs_mhz: np.ndarray, known_w: float | None, others: Sequence[tuple[object, ...]] | None = None
    ) -> None:
        self.known_w = known_w
        self.scale_mhz = float(freqs_mhz.max()) or 1.0
        self.x = freqs_mhz / self.scale_mhz
        self.others = list(others) if others is not None else [()] * len(freqs_mhz)
        self._levels: dict[tuple[object, ...], dict[float, np.ndarray]] = {}  # group → level (MHz) → [idle s, J]
        self._cached: np.ndarray | None = None

    def add(self, freq_mhz: float, *, idle_j: float, idle_s: float, others: tuple[object, ...] = ()) -> None:
        """One window's idle energy (J) over its idle time (s), at `freq_mhz` and the other knobs `others`."""
        if idle_s > 1e-6 and np.isfinite(idle_j):
            self._levels.setdefault(others, {}).setdefault(freq_mhz, np.zeros(2))[:] += (idle_s, idle_j)
            self._cached = None

    def predict(self) -> np.ndarray:
        """Idle power (W) per config."""
        if self._cached is None:
            self._cached = self._predict()
        return self._cached

    def _predict(self) -> np.ndarray:
        if self.known_w is not None:
            return np.full(len(self.x), self.known_w)
        if not self._levels:
            return np.zeros(len(self.x))
        pooled: dict[float, np.ndarray] = {}
        for levels in self._levels.values():
            for f, seen in levels.items():
                pooled[f] = pooled.get(f, np.zeros(2)) + seen
        fits = {group: self._fit(levels) for group, levels in self._levels.items()}
        fallback = self._fit(pooled) if len(fits) < len(set(self.others)) else None
        coef = np.array([fits.get(group, fallback) for group in self.others])
        watts = np.zeros(len(self.x))
        for column in coef.T:  # Horner's rule per config, as np.polyval
            watts = watts * self.x + column
        return np.maximum(watts, 0.0)

    def _fit(self, levels: dict[float, np.ndarray]) -> np.ndarray:
        """Polynomial coefficients (highest power first) of idle power over f/scale for one group's levels."""
        x = np.array(list(levels)) / self.scale_mhz
        seconds, joules = np.array(list(levels.values())).T
        watts, weight = joules / seconds, np.sqrt(seconds)
        coef = np.array([float(np.sum(weight**2 * watts) / np.sum(weight**2))])
        for degree in (1, 2)[: len(x) - 1]:
            fit = np.polyfit(x, watts, degree, w=weight)
            if degree == 2 and fit[0] < 0:
                break
            coef = fit
        return np.pad(coef, (3 - len(coef), 0))
