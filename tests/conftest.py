"""Shared test helpers: a deterministic platform model and a synthetic profile writer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from edpilot.backends import Backends, build_space
from edpilot.clock import VirtualClock
from edpilot.objective import Objective
from edpilot.runlog import RunLog
from edpilot.runner import Runner
from edpilot.sim import BatchCost, SimDevice, SimEngine
from edpilot.tuner import SessionSettings, TuneResult, TuningSession, tune
from edpilot.workload import RequestSource, Workload


class LinearModel:
    """Deterministic platform: service = a + c·b seconds, energy = service × active power, fixed idle power."""

    has_energy = True

    def __init__(
        self, *, base_s: float = 0.5, per_request_s: float = 0.1, active_w: float = 20.0, idle_w: float = 5.0
    ) -> None:
        self.freqs_mhz = (500.0, 1000.0)
        self.base_s, self.per_request_s, self.active_w, self.idle_w = base_s, per_request_s, active_w, idle_w

    def service_s(self, batch_size: int) -> float:
        return self.base_s + self.per_request_s * batch_size

    def idle_power_w(self, freq_mhz: float) -> float:
        return self.idle_w

    def batch_cost(
        self, freq_mhz: float, prompt_tokens: Sequence[int], output_tokens: int, rng: np.random.Generator
    ) -> BatchCost:
        s = self.service_s(len(prompt_tokens))
        return BatchCost(service_s=s, energy_j=s * self.active_w, ttft_s=s / 4)

    def describe(self) -> dict[str, object]:
        return {"model": "linear"}


@pytest.fixture
def linear_platform() -> Callable[..., tuple[SimDevice, SimEngine, VirtualClock, LinearModel]]:
    def make(**kwargs: float) -> tuple[SimDevice, SimEngine, VirtualClock, LinearModel]:
        clock = VirtualClock()
        model = LinearModel(**kwargs)
        device = SimDevice(model, clock, name="linear")
        return device, SimEngine(device, model, clock, np.random.default_rng(0)), clock, model

    return make


def write_synthetic_profile(
    path: Path,
    cost: Callable[[float, int], tuple[float, float]],
    *,
    freqs_mhz: Sequence[float],
    batch_sizes: Sequence[int],
    repeats: int = 3,
    idle_power_w: float = 5.0,
    noise: float = 0.01,
    seed: int = 0,
) -> Path:
    """Write a profile table whose (latency, energy) per config come from `cost`, with small noise."""
    rng = np.random.default_rng(seed)
    lines = ["# device: synthetic", f"# idle_power_w: {idle_power_w}", "freq_mhz,batch_size,latency_s,energy_j"]
    for f in freqs_mhz:
        for b in batch_sizes:
            lat, energy = cost(f, b)
            for _ in range(repeats):
                k = float(np.exp(rng.normal(0, noise)))
                lines.append(f"{f},{b},{lat * k:.6f},{energy * k:.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_tune(
    backends: Backends,
    *,
    strategy: str = "grid",
    objective: Objective | None = None,
    budget: int = 5,
    workload: RequestSource | None = None,
    requests_per_round: int = 32,
    energy_scope: str = "total",
    seed: int = 0,
    run_log: RunLog | None = None,
    engine: object | None = None,
    batches: str | None = None,
    freqs: str | None = None,
    governor: bool = False,
    **settings: object,
) -> TuneResult:
    """A replayed tuning run on `backends` with the library API, as the CLI builds it."""
    workload = workload or Workload()
    space = build_space(backends, freqs=freqs, batches=batches)
    session = TuningSession(
        SessionSettings(
            space=space,
            objective=objective or Objective("edp"),
            strategy=strategy,
            baseline=space.baseline(),
            energy_scope=energy_scope,  # type: ignore[arg-type]
            seed=seed,
            **settings,  # type: ignore[arg-type]
        ),
        workload.traffic(requests_per_round),
        run_log=run_log,
    )
    runner = Runner(
        device=backends.device,
        engine=engine or backends.engine,  # type: ignore[arg-type]
        workload=workload,
        requests_per_round=requests_per_round,
        energy_scope=energy_scope,  # type: ignore[arg-type]
        seed=seed,
    )
    return tune(runner=runner, session=session, budget=budget, governor=governor)
