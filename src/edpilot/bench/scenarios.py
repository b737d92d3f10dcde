"""Benchmark scenarios: analytic presets, given profile tables, and synthetic profiles built to be hard.

A synthetic profile is a physics-shaped surface — batch time = memory part + (compute part ∝ b) / f, batch
energy = time × active power growing with f² — with one deliberate difficulty each: a thermal-throttling step,
a non-monotone batch axis, heavy measurement noise, an optimum at b = 1–3, a memory cliff, or an odd grid.
The steady-state family (`steady_scenarios`) is hard for a search that serves users while it tunes: a lone
sweet spot 0.6× off the smooth surface, outlier windows (a 2× thermal hiccup, `Hiccups`), a rate only large
batches serve, an optimum at 90–99 % utilisation, and a GPU power-limit × batch surface shaped like published
traces, whose optimum a smooth model predicts far off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edpilot.clock import Clock
from edpilot.sim.model import BatchCost, PerformanceModel
from edpilot.sim.profile import ProfileRow, write_profile

MODELS = ("llama-3.2-1b", "qwen2.5-3b")
BOARDS = ("orin-agx-32gb", "orin-agx-64gb")
RATES_PER_S = (0.1, 0.5, 1.0, 2.0, 4.0)
ARRIVALS = ("uniform", "poisson")
PROMPT_TOKENS = 100  # fixed prompt length, so the noise-free batch cost of a config is one number
OUTPUT_TOKENS = 70


@dataclass(frozen=True)
class Scenario:
    """One benchmark setting; `drift` lists arrival-rate factors applied in turn after the search budget."""

    name: str
    family: str
    arrivals: str = "poisson"
    rate_per_s: float = 1.0
    board: str = "orin-agx-32gb"
    model: str = "llama-3.2-1b"
    profile: str | None = None
    synthetic: str | None = None
    freqs: str | None = None
    batches: str | None = None
    emcs: str | None = None  # --emcs: the memory clock levels searched too (None: left at the board's)
    objective: str = "edp"
    energy_scope: str = "total"
    slo: bool = False  # --slo-p95 just below the unconstrained optimum's p95 (it must move)
    power_cap: bool = False  # --power-cap just below the unconstrained optimum's window power
    drift: tuple[float, ...] = ()
    drift_rounds: int = 6
    hiccups: bool = False  # every batch 2× slower and costlier during HICCUP_SPANS_S (a thermal hiccup)
    prompt_tokens: int = PROMPT_TOKENS
    phase_clocks: bool = False  # decode GPU levels as an axis of their own (--phase-clocks)


FREQS_WIDE = (300.0, 500.0, 700.0, 900.0, 1100.0, 1300.0)


def _base(f: float, b: int) -> tuple[float, float]:
    """Smooth surface: batch time (s) and energy (J) of a 70-token batch."""
    time_s = 0.6 * (1 + 0.06 * b) + 0.5 * (1 + 0.15 * b) * (900.0 / f)
    power_w = 9.0 + 14.0 * (f / 1300.0) ** 2
    return time_s, time_s * power_w


def _stepped(
    time_factor: float, energy_factor: float, where: Callable[[float, int], bool]
) -> Callable[[float, int], tuple[float, float]]:
    """The smooth surface with batch time and energy multiplied where `where(f, b)` holds (a step, a cliff)."""

    def surface(f: float, b: int) -> tuple[float, float]:
        t, e = _base(f, b)
        return (t * time_factor, e * energy_factor) if where(f, b) else (t, e)

    return surface


@dataclass(frozen=True)
class Synthetic:
    """How to write one synthetic profile: its surface, grid and per-sample noise (log sd)."""

    surface: Callable[[float, int], tuple[float, float]]
    freqs_mhz: Sequence[float]
    batch_sizes: Sequence[int]
    noise: float = 0.02
    repeats: int = 6
    idle_power_w: float = 7.0
    notes: str = field(default="")


def _lone(f: float, b: int) -> tuple[float, float]:
    """The smooth surface with one config 0.6× in time and energy (a sweet spot no neighbour hints at)."""
    t, e = _base(f, b)
    return (0.6 * t, 0.6 * e) if (f, b) == (500.0, 4) else (t, e)


POWER_LIMITS_W = (150.0, 200.0, 250.0, 300.0, 350.0, 400.0, 500.0, 600.0, 700.0)


def _power_limit(limit_w: float, b: int) -> tuple[float, float]:
    """A GPU power limit (W, on the frequency axis) × batch surface shaped like published H100 traces.

    Unconstrained, a decode batch draws more power the larger it is (120 → 520 W) and is memory-bound (time
    nearly flat in b). Under a limit below that draw the clocks throttle: time grows as (draw / limit)^0.7,
    energy = time × limit. Above the draw a higher limit lets the clocks boost: power grows as (limit / draw)^0.3
    for a time only (draw / limit)^0.05 shorter. So the energy-best limit sits at the knee of each batch size —
    far below the top limit, where the baseline measures — and a smooth model anchored at the top predicts it
    badly.
    """
    draw_w = 120.0 + 400.0 * (1.0 - np.exp(-b / 12.0))
    ratio = limit_w / draw_w
    time_s = (1.2 + 0.05 * b) * ratio ** (-0.7 if ratio < 1.0 else -0.05)
    power_w = limit_w if ratio < 1.0 else draw_w * ratio**0.3
    return time_s, time_s * power_w


def _edge(f: float, b: int) -> tuple[float, float]:
    """Batch time nearly flat in f and power steep in f: the cheapest clock that keeps up wins (ρ 0.9–0.99)."""
    time_s = (0.8 + 0.09 * b) * (1300.0 / f) ** 0.55
    power_w = 6.0 + 20.0 * (f / 1300.0) ** 2.5
    return time_s, time_s * power_w


SYNTHETIC: dict[str, Synthetic] = {
    "throttle": Synthetic(
        _stepped(1.25, 1.45, lambda f, b: f >= 1000 and b >= 8),
        FREQS_WIDE,
        (1, 2, 4, 8, 12, 16),
        notes="time ×1.25, energy ×1.45 at f ≥ 1000, b ≥ 8",
    ),
    "nonmonotone": Synthetic(
        _stepped(1.3, 1.3, lambda f, b: b in (6, 10, 14)), FREQS_WIDE[::2] + (1200.0,), (2, 4, 6, 8, 10, 12, 14, 16)
    ),
    "noisy": Synthetic(_base, FREQS_WIDE, (1, 2, 4, 8, 16, 32), noise=0.08, repeats=12),
    "small-b": Synthetic(_base, FREQS_WIDE + (1200.0,), (1, 2, 3, 4, 6, 8)),
    "cliff": Synthetic(_stepped(1.8, 1.9, lambda f, b: b >= 12), FREQS_WIDE, (2, 4, 8, 12, 16, 24)),
    "one-freq": Synthetic(_base, (900.0,), (1, 2, 3, 5, 8, 13, 21, 34)),
    "two-batch": Synthetic(_base, tuple(np.linspace(200.0, 1300.0, 12).round(1)), (4, 16)),
    "uneven": Synthetic(_base, (300.0, 320.0, 1300.0), (1, 5, 7, 30)),
    # Held out (`--holdout`): written after the strategies' settings were chosen (docs/benchmarks.md).
    "cliff-16": Synthetic(
        _stepped(1.6, 1.7, lambda f, b: b >= 16),
        FREQS_WIDE,
        (2, 4, 8, 16, 24, 32),
        notes="time ×1.6, energy ×1.7 at b ≥ 16",
    ),
    "cliff-8": Synthetic(
        _stepped(1.8, 1.9, lambda f, b: b >= 8), FREQS_WIDE, (1, 2, 4, 8, 16), notes="time ×1.8, energy ×1.9 at b ≥ 8"
    ),
    "throttle-low": Synthetic(
        _stepped(1.2, 1.3, lambda f, b: f >= 700 and b >= 4),
        FREQS_WIDE,
        (1, 2, 4, 8, 12, 16),
        notes="×1.2/×1.3 at f ≥ 700, b ≥ 4",
    ),
    "noisier": Synthetic(_base, FREQS_WIDE, (1, 2, 4, 8, 16), noise=0.10, repeats=12),
    "tiny": Synthetic(_base, (500.0, 1300.0), (2, 8, 16)),
    "slow-level": Synthetic(
        _stepped(1.2, 1.25, lambda f, b: f == 900.0), FREQS_WIDE, (1, 2, 4, 8, 16), notes="900 MHz ×1.2/×1.25"
    ),
    "spike": Synthetic(
        _stepped(3.0, 3.0, lambda f, b: (f, b) == (700.0, 4)),
        FREQS_WIDE,
        (1, 2, 4, 8, 16),
        notes="(700 MHz, b = 4) 3× slower",
    ),
    # Steady-state family: hard for a search that serves users while it tunes.
    "lone": Synthetic(_lone, FREQS_WIDE, (1, 2, 4, 8, 16), notes="(500 MHz, b = 4) 0.6× in time and energy"),
    "large-b": Synthetic(_base, FREQS_WIDE, (2, 4, 8, 12, 16, 24, 32), notes="at λ = 5.5 only b ≥ 12 keeps up"),
    "edge": Synthetic(
        _edge,
        tuple(np.linspace(300.0, 1300.0, 11).round(1)),
        (1, 2, 4, 8, 16),
        notes="time ∝ f^-0.55, power steep in f",
    ),
    "power-limit": Synthetic(
        _power_limit,
        POWER_LIMITS_W,
        (1, 2, 4, 8, 16, 32, 64),
        idle_power_w=60.0,
        notes="power limit (W) on the frequency axis × batch; time ∝ (draw/limit)^0.7 below the draw",
    ),
}

HICCUP_SPANS_S = ((150.0, 162.0), (400.0, 412.0))  # virtual seconds from the start of the run


class Hiccups:
    """A performance model whose batches run 2× slower and costlier inside `spans_s` of the clock's time
    (a board's thermal hiccup): whole windows become outliers, then the board recovers."""

    def __init__(self, inner: PerformanceModel, clock: Clock, spans_s: Sequence[tuple[float, float]]) -> None:
        self.inner, self.clock = inner, clock
        self.start_s = clock.now_s()
        self.spans_s = tuple(spans_s)
        self.freqs_mhz, self.has_energy = inner.freqs_mhz, inner.has_energy

    def idle_power_w(self, freq_mhz: float) -> float:
        """The inner model's idle power (W)."""
        return self.inner.idle_power_w(freq_mhz)

    def batch_cost(
        self, freq_mhz: float, prompt_tokens: Sequence[int], output_tokens: int, rng: np.random.Generator
    ) -> BatchCost:
        """The inner model's sample, doubled in time and energy inside a hiccup."""
        cost = self.inner.batch_cost(freq_mhz, prompt_tokens, output_tokens, rng)
        t = self.clock.now_s() - self.start_s
        if not any(lo <= t < hi for lo, hi in self.spans_s):
            return cost
        energy_j = None if cost.energy_j is None else 2.0 * cost.energy_j
        return BatchCost(2.0 * cost.service_s, energy_j, None if cost.ttft_s is None else 2.0 * cost.ttft_s)

    def describe(self) -> dict[str, object]:
        """The inner model's metadata and the hiccups."""
        return {**self.inner.describe(), "hiccups_s": [list(span) for span in self.spans_s]}


def write_synthetic(name: str, directory: Path) -> Path:
    """Write synthetic profile `name` into `directory` (deterministic) and return its path."""
    spec = SYNTHETIC[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    rows = []
    for f in spec.freqs_mhz:
        for b in spec.batch_sizes:
            t, e = spec.surface(f, b)
            noise = np.exp(rng.normal(0.0, spec.noise, size=(spec.repeats, 2)))
            noise[:, 1] *= noise[:, 0]  # energy follows time, plus its own noise
            noise /= noise.mean(axis=0)  # the per-config means are exactly the surface
            rows += [ProfileRow(float(f), int(b), t * k_t, e * k_e) for k_t, k_e in noise]
    path = directory / f"synthetic-{name}.csv"
    metadata = {"device": f"synthetic-{name}", "idle_power_w": str(spec.idle_power_w), "notes": spec.notes}
    write_profile(path, metadata, rows)
    return path


def _analytic(rates: Sequence[float], *, family: str, prefix: str = "") -> list[Scenario]:
    """The analytic presets: both models × both boards × `rates` × uniform and Poisson arrivals."""
    out = []
    for model in MODELS:
        for board in BOARDS:
            for rate in rates:
                for arrivals in ARRIVALS:
                    name = f"{prefix}{model.split('-')[0]}-{board[-4:]}-{arrivals[0]}{rate:g}"
                    out.append(Scenario(name, family, arrivals, rate, board, model))
    return out


def holdout_scenarios() -> list[Scenario]:
    """Scenarios written after the strategies' settings were chosen: other rates, objectives and hard surfaces."""
    out = _analytic((0.3, 0.75, 1.5, 3.0), family="holdout-analytic", prefix="ho-")
    for objective in ("ed2p", "energy", "latency", "weighted:0.3"):
        out.append(
            Scenario(
                f"ho-{objective}",
                "holdout-analytic",
                "poisson",
                1.5,
                "orin-agx-64gb",
                "qwen2.5-3b",
                objective=objective,
            )
        )
    out.append(Scenario("ho-active-p0.75", "holdout-analytic", "poisson", 0.75, energy_scope="active"))
    synthetic = {
        "cliff-16": ("uniform", (2.0, 4.0, 6.0)),
        "cliff-8": ("uniform", (2.0, 3.0)),
        "throttle-low": ("poisson", (1.0, 2.5)),
        "noisier": ("uniform", (0.5, 2.0)),
        "tiny": ("poisson", (1.0,)),
        "slow-level": ("poisson", (1.0, 3.0)),
        "spike": ("uniform", (1.0, 2.0)),
    }
    for name, (arrivals, rates) in synthetic.items():
        for rate in rates:
            out.append(
                Scenario(f"ho-{name}-{arrivals[0]}{rate:g}", "holdout-synthetic", arrivals, rate, synthetic=name)
            )
    out += [
        Scenario("ho-drift-64-p0.5", "holdout-drift", "poisson", 0.5, board="orin-agx-64gb", drift=(4.0, 1.0)),
        Scenario("ho-drift-throttle-p0.5", "holdout-drift", "poisson", 0.5, synthetic="throttle-low", drift=(4.0, 1.0)),
    ]
    return out


PROFILES_DIR = Path(__file__).resolve().parents[3] / "profiles"  # measured tables in a source checkout


def measured_scenarios() -> list[Scenario]:
    """Measured batch-axis surfaces of an NVIDIA H200 (profiles/h200-*.csv in a source checkout; none when the
    package is installed without them): λ = 4 and 16 req/s, Poisson."""
    out = []
    for path in sorted(PROFILES_DIR.glob("h200-*.csv")):
        for rate in (4.0, 16.0):
            out.append(Scenario(f"{path.stem}-p{rate:g}", "measured", "poisson", rate, profile=str(path)))
    return out


def steady_scenarios() -> list[Scenario]:
    """Surfaces hard for a search that serves users while it tunes (the steady-state family)."""
    return [
        Scenario("st-lone-p1", "steady", "poisson", 1.0, synthetic="lone"),
        Scenario("st-lone-u1.5", "steady", "uniform", 1.5, synthetic="lone"),
        Scenario("st-hiccup-p1", "steady", "poisson", 1.0, synthetic="throttle", hiccups=True),
        Scenario("st-hiccup-64-p2", "steady", "poisson", 2.0, board="orin-agx-64gb", hiccups=True),
        Scenario("st-large-b-p5.5", "steady", "poisson", 5.5, synthetic="large-b"),
        Scenario("st-edge-u1.5", "steady", "uniform", 1.5, synthetic="edge"),
        Scenario("st-edge-p1.5", "steady", "poisson", 1.5, synthetic="edge"),
        Scenario("st-power-limit-p4", "steady", "poisson", 4.0, synthetic="power-limit"),
        Scenario("st-power-limit-u8", "steady", "uniform", 8.0, synthetic="power-limit"),
    ]


def knob_scenarios() -> list[Scenario]:
    """Three knobs on the simulated AGX Orin 32GB: 7 GPU levels × 4 memory clock levels × 7 batch sizes (196
    configs), Poisson arrivals. The memory clock pays at low rates (idle power falls with it) and for energy."""
    rates = {"llama-3.2-1b": (0.1, 0.25, 1.0, 4.0), "qwen2.5-3b": (0.1, 1.0)}
    out = [
        Scenario(f"k3-{model.split('-')[0]}-p{rate:g}", "three-knobs", "poisson", rate, model=model, emcs="all")
        for model, model_rates in rates.items()
        for rate in model_rates
    ]
    for rate in (0.25, 1.0):
        out.append(Scenario(f"k3-energy-p{rate:g}", "three-knobs", "poisson", rate, objective="energy", emcs="all"))
    return out


def default_scenarios(*, profiles: Sequence[str] = (), quick: bool = False) -> list[Scenario]:
    """The sweep: analytic presets × rates × arrivals, synthetic profiles, given profiles, constraints, drift."""
    out = _analytic((0.1, 1.0, 4.0) if quick else RATES_PER_S, family="analytic")
    synthetic = {
        "throttle": ("poisson", 3.0),
        "nonmonotone": ("uniform", 2.0),
        "noisy": ("poisson", 1.0),
        "small-b": ("poisson", 0.3),
        "cliff": ("uniform", 4.0),
        "one-freq": ("poisson", 2.0),
        "two-batch": ("uniform", 1.0),
        "uneven": ("poisson", 1.5),
    }
    for name, (arrivals, rate) in synthetic.items():
        out.append(Scenario(f"syn-{name}", "synthetic", arrivals, rate, synthetic=name))
    for path in profiles:
        for arrivals in ARRIVALS:
            out.append(Scenario(f"{Path(path).stem}-{arrivals[0]}1", "profile", arrivals, 1.0, profile=path))
    out += [
        Scenario("paper-weighted", "objectives", "uniform", 1.0, objective="weighted:0.5", energy_scope="active"),
        Scenario("ed2p-qwen-p1", "objectives", "poisson", 1.0, model="qwen2.5-3b", objective="ed2p"),
        Scenario("energy-p2", "objectives", "poisson", 2.0, objective="energy"),
        Scenario("freqs-all-p1", "objectives", "poisson", 1.0, board="orin-agx-64gb", freqs="all"),
        Scenario("slo-qwen-64-p4", "constrained", "poisson", 4.0, board="orin-agx-64gb", model="qwen2.5-3b", slo=True),
        Scenario("cap-llama-32-u4", "constrained", "uniform", 4.0, power_cap=True),
        Scenario("cap-llama-32-p4", "constrained", "poisson", 4.0, power_cap=True),
        Scenario("cap-qwen-32-u2", "constrained", "uniform", 2.0, model="qwen2.5-3b", power_cap=True),
        Scenario(
            "cap-qwen-64-u4", "constrained", "uniform", 4.0, board="orin-agx-64gb", model="qwen2.5-3b", power_cap=True
        ),
        Scenario("drift-p1", "drift", "poisson", 1.0, drift=(4.0, 1.0)),
        Scenario("drift-u0.5", "drift", "uniform", 0.5, model="qwen2.5-3b", drift=(4.0, 1.0)),
        Scenario("drift-syn-p1", "drift", "poisson", 1.0, synthetic="throttle", drift=(4.0, 1.0)),
    ]
    return out + steady_scenarios() + measured_scenarios()
