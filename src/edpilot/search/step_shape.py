"""How a decode step grows with the sequences in it: log step time and energy over occupancy, per device level.

Under continuous batching a round measures the mean step at whatever occupancy it ran — the mean active sequences
per step, `Observation.mean_sequences` — and a config's queue may still have been filling: its steady occupancy,
and so its step, can be higher. `StepShape` learns, from every round,

    log y = u_g + w · z + v_g·x + w_t·t,   z = (x, x², x·x_k for each knob axis k),   x = log(n / REF_SEQUENCES),

for y the mean step time (s) and the mean step energy (J) at n active sequences, g the config's device levels and
x_k their centred log levels (`hardware.axis_columns`). `u_g` is each level's own: it is profiled out (a level's
rounds are centred on their mean), so only levels measured at two occupancies or more teach `w`, the shape, and
`v_g`, the level's own slope around it (a random effect, sd LEVEL_SLOPE_SD: the knee of a roofline is sharper than
the smooth terms), and `w_t`, a step's growth with t = log(context tokens / REF_CONTEXT_TOKENS), a sequence's mean
tokens in the KV cache (`Observation.mean_context_tokens`: prompt and tokens made; learned where rounds at one
level ran different contexts, else the prior); the per-config level is what the search's `LogResponse` learns.
Bayesian linear regression, closed form, numpy only.

The prior (`SHAPE_PRIOR`) is the roofline's: a step reads the weights once whatever the sequences (flat while
memory-bound) and grows towards ∝ n once the sequences' compute and KV reads dominate (convex in log n; on the
simulated AGX Orin Qwen2.5-3B's step is 22 ms with 2 sequences and 52 ms with 28 at 816 MHz). A learned curve
that would fall with n is held flat (`curve` takes, at each n, the least value from n up).
"""

from __future__ import annotations

import numpy as np

from edpilot.search.hardware import axis_columns
from edpilot.space import ConfigSpace

REF_SEQUENCES = 8.0  # the occupancy x is centred on
# (mean, sd) of each weight; assumed. The knee (compute overtaking the weight read) moves ∝ the GPU clock, so at a
# given occupancy the step rises less steeply at a higher clock: the gpu_mhz cross term leans negative (on the
# simulated roofline, from 306 to 930.75 MHz, the slope at 14 sequences falls by about 0.4 per unit log clock).
# A step reads each sequence's KV cache: a longer context lengthens it by the KV reads' share (assumed ~10 %).
SHAPE_PRIOR = {
    "slope": (0.15, 0.15),
    "curvature": (0.1, 0.1),
    "knob": (0.0, 0.2),
    "gpu_mhz": (-0.3, 0.2),
    "context": (0.1, 0.1),
}
REF_CONTEXT_TOKENS = 64.0  # the context t is centred on
LEVEL_SLOPE_SD = 0.2  # assumed: a device level's own slope in x around the smooth one (a knee the terms miss)
ROUND_NOISE_SD = 0.05  # assumed: a round's mean log step around the shape (transient queues, joiners' prefill)


class StepShape:
    """Log step time and log step energy over occupancy, learned from rounds; per config of `space`."""

    def __init__(self, space: ConfigSpace) -> None:
        names, cols = axis_columns(space)
        knobs = [name for name in names if name != "batch"]
        knob_cols = [col for name, col in zip(names, cols, strict=True) if name != "batch"]
        self.knob_x = np.array(knob_cols).T.reshape(len(space), len(knobs))
        ids: dict[object, int] = {}
        self.group = np.array([ids.setdefault(c.knobs, len(ids)) for c in space.configs])
        crosses = [SHAPE_PRIOR.get(name, SHAPE_PRIOR["knob"]) for name in knobs]
        levels = len(ids)
        mean = [SHAPE_PRIOR["slope"][0], SHAPE_PRIOR["curvature"][0], *(m for m, _ in crosses), *([0.0] * levels)]
        sd = [SHAPE_PRIOR["slope"][1], SHAPE_PRIOR["curvature"][1], *(d for _, d in crosses)]
        sd += [LEVEL_SLOPE_SD] * levels
        mean.append(SHAPE_PRIOR["context"][0])
        sd.append(SHAPE_PRIOR["context"][1])
        self.prior_mean, self.prior_prec = np.array(mean), 1.0 / np.array(sd) ** 2
        # config, occupancy, context tokens, step s, step J
        self._rounds: list[tuple[int, float, float, float, float | None]] = []
        self.time_w, self.energy_w = self.prior_mean.copy(), self.prior_mean.copy()

    def add(
        self, index: int, *, sequences: float, context_tokens: float, step_s: float, step_energy_j: float | None
    ) -> None:
        """One round at config `index`: its mean active sequences per step, a sequence's mean tokens in the KV
        cache, and its mean step time (s) and energy (J)."""
        if sequences >= 1.0 and context_tokens >= 1.0 and step_s > 0:
            energy = step_energy_j if step_energy_j is not None and step_energy_j > 0 else None
            self._rounds.append((index, float(sequences), float(context_tokens), float(step_s), energy))
            self.time_w = self._fit([(i, n, t, s) for i, n, t, s, _ in self._rounds])
            self.energy_w = self._fit([(i, n, t, e) for i, n, t, _, e in self._rounds if e is not None])

    def context_log(self, context_tokens: float, *, energy: bool = False) -> float:
        """How much longer (log) a step is with `context_tokens` per sequence than with REF_CONTEXT_TOKENS."""
        w = self.energy_w if energy else self.time_w
        return float(w[-1] * np.log(context_tokens / REF_CONTEXT_TOKENS))

    def curve(self, sequences: np.ndarray, *, energy: bool = False) -> np.ndarray:
        """Log step time (or energy) per config (rows) at each of `sequences` (columns, ascending) at the reference
        context, up to a per-config constant; non-decreasing in occupancy (`context_log` adds the context's)."""
        w = self.energy_w if energy else self.time_w
        n = np.asarray(sequences, dtype=float)[None, :]
        z = self._features(np.arange(self.knob_x.shape[0])[:, None], n, np.full_like(n, REF_CONTEXT_TOKENS))
        return np.minimum.accumulate((z @ w)[:, ::-1], axis=1)[:, ::-1]  # flat below the parabola's vertex

    def _features(self, index: np.ndarray, sequences: np.ndarray, context_tokens: np.ndarray) -> np.ndarray:
        x, context = np.broadcast_arrays(np.log(sequences) - np.log(REF_SEQUENCES), np.log(context_tokens), index)[:2]
        x, context = x[..., None], context[..., None] - np.log(REF_CONTEXT_TOKENS)
        own = self.group[index][..., None] == np.arange(self.group.max() + 1)  # the level's own slope
        return np.concatenate([x, x**2, x * self.knob_x[index], x * own, context], axis=-1)

    def _fit(self, rounds: list[tuple[int, float, float, float]]) -> np.ndarray:
        """Posterior mean of the shape's weights from rounds (config, occupancy, context, value), levels profiled
        out."""
        if not rounds:
            return self.prior_mean.copy()
        index, n, context, value = (np.array(col) for col in zip(*rounds, strict=True))
        z = self._features(index.astype(int), n, context)
        y = np.log(value)
        groups = self.group[index.astype(int)]
        for g in np.unique(groups):  # centre each level's rounds: its own level u_g drops out
            mine = groups == g
            z[mine] -= z[mine].mean(axis=0)
            y[mine] -= y[mine].mean()
        prec = np.diag(self.prior_prec) + z.T @ z / ROUND_NOISE_SD**2
        return np.linalg.solve(prec, self.prior_prec * self.prior_mean + z.T @ y / ROUND_NOISE_SD**2)
