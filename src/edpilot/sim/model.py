"""Performance and power of one static batch on a simulated board: analytic or replayed from a profile.

Analytic model (docs/simulator.md): prefill is bound by compute (∝ 1/f); each decode step is bound by
the larger of weight+KV bytes over memory bandwidth and the batch's matmul FLOPs, plus a per-step
overhead of kernel launches (GPU cycles, ∝ 1/f) and host work; power = module base + GPU static
(∝ V) + GPU switching (∝ f·V²·activity) + DRAM energy per byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edpilot.architectures import ModelArch
from edpilot.errors import ConfigError
from edpilot.sim.constants import (
    ENERGY_NOISE_SIGMA,
    GPU_VOLTAGE_CURVE,
    SERVICE_NOISE_SIGMA,
    BoardSpec,
    RuntimeSpec,
)
from edpilot.sim.profile import ProfileTable


@dataclass(frozen=True)
class BatchCost:
    """Service time (s), device energy during it (J; None when not known), and TTFT from batch start (s)."""

    service_s: float
    energy_j: float | None
    ttft_s: float | None


class PerformanceModel(Protocol):
    """What the simulated device and engine ask of a model of the platform."""

    freqs_mhz: tuple[float, ...]
    has_energy: bool

    def idle_power_w(self, freq_mhz: float) -> float:
        """Device power (W) with the GPU pinned at `freq_mhz` and no batch running."""
        ...

    def batch_cost(
        self, freq_mhz: float, prompt_tokens: Sequence[int], output_tokens: int, rng: np.random.Generator
    ) -> BatchCost:
        """One noisy sample of serving a batch with these prompt lengths and output length."""
        ...

    def describe(self) -> dict[str, object]:
        """Metadata for the run log."""
        ...

    def sample_step_cost(
        self,
        freq_mhz: float,
        decode_context_tokens: Sequence[int],
        prefill_prompt_tokens: Sequence[int],
        rng: np.random.Generator,
    ) -> BatchCost:
        """One noisy sample of a continuous-batching step (see `AnalyticModel.step_cost`)."""
        ...


def gpu_voltage_v(freq_mhz: float) -> float:
    """GPU rail voltage (V) at `freq_mhz`, interpolated on the (assumed) DVFS curve."""
    f, v = zip(*GPU_VOLTAGE_CURVE)
    return float(np.interp(freq_mhz, f, v))


class AnalyticModel:
    """Roofline-style model of an LLM runtime on a Jetson board, with multiplicative noise."""

    has_energy = True

    def __init__(self, board: BoardSpec, arch: ModelArch, runtime: RuntimeSpec) -> None:
        if arch.name not in runtime.weight_bits_per_param:
            raise ConfigError(f"the simulator has no weight size for model {arch.name!r} on {runtime.name}")
        self.board, self.arch, self.runtime = board, arch, runtime
        self.freqs_mhz = board.freqs_mhz
        self.weight_bytes = arch.total_params * runtime.weight_bits_per_param[arch.name] / 8

    def describe(self) -> dict[str, object]:
        """Board, model and runtime names."""
        return {"board": self.board.name, "model": self.arch.name, "runtime": self.runtime.name}

    def gpu_power_w(self, freq_mhz: float, activity: float | np.ndarray) -> float | np.ndarray:
        """GPU static + switching power (W) at `freq_mhz` for an activity factor in [0, 1]."""
        b, v = self.board, gpu_voltage_v(freq_mhz)
        return b.sm_count * (b.gpu_leak_w_per_sm_per_v * v + b.gpu_dyn_w_per_sm_per_mhz_v2 * freq_mhz * v**2 * activity)

    def idle_power_w(self, freq_mhz: float) -> float:
        """Module power (W) with the GPU pinned at `freq_mhz` and idle."""
        return self.board.base_power_w + float(self.gpu_power_w(freq_mhz, self.board.gpu_idle_activity))

    def _peak_flops(self, freq_mhz: float) -> float:
        return self.board.sm_count * self.board.fp16_flops_per_cycle_per_sm * freq_mhz * 1e6

    def _bandwidth_bps(self, freq_mhz: float) -> float:
        rt = self.runtime
        scale = min(1.0, freq_mhz / rt.bandwidth_saturation_mhz)
        return self.board.mem_bandwidth_gbps * 1e9 * rt.mem_bandwidth_efficiency * scale

    def _step_overhead_s(self, freq_mhz: float, batch_size: int) -> float:
        rt = self.runtime
        launch_s = self.arch.num_layers * rt.kernels_per_layer * rt.cycles_per_kernel / (freq_mhz * 1e6)
        return launch_s + rt.host_s_per_step + batch_size * rt.host_s_per_sequence_step

    def expected_cost(self, freq_mhz: float, prompt_tokens: Sequence[int], output_tokens: int) -> BatchCost:
        """Noise-free service time, energy and TTFT of one batch."""
        arch, rt, board = self.arch, self.runtime, self.board
        b = len(prompt_tokens)
        prompts = np.asarray(prompt_tokens, dtype=float)
        peak, bw = self._peak_flops(freq_mhz), self._bandwidth_bps(freq_mhz)
        q_dim = arch.num_heads * arch.head_dim
        overhead_s = self._step_overhead_s(freq_mhz, b)

        # Prefill: every prompt token through every matmul, plus causal attention.
        prefill_flops = (
            2 * arch.matmul_params_per_token * prompts.sum() + 2 * arch.num_layers * q_dim * (prompts**2).sum()
        )
        prefill_compute_s = prefill_flops / (peak * rt.prefill_flops_efficiency)
        prefill_mem_s = (self.weight_bytes + prompts.sum() * arch.kv_bytes_per_token) / bw
        prefill_busy_s = max(prefill_compute_s, prefill_mem_s)
        prefill_s = prefill_busy_s + overhead_s

        # Decode: output_tokens − 1 steps (the first token comes from prefill).
        steps = np.arange(1, output_tokens)
        context_tokens = prompts.sum() + b * steps
        step_bytes = self.weight_bytes + context_tokens * arch.kv_bytes_per_token
        mem_s = step_bytes / bw
        compute_s = (2 * arch.matmul_params_per_token * b + 4 * arch.num_layers * q_dim * context_tokens) / (
            peak * rt.decode_flops_efficiency
        )
        busy_s = np.maximum(mem_s, compute_s)
        decode_s = float((busy_s + overhead_s).sum())

        # Activity: SMs stalled on memory still switch at ~30% (assumed); launch/host gaps are idle.
        active = 0.3 + 0.7 * np.append(compute_s / busy_s, prefill_compute_s / prefill_busy_s)
        busy_all = np.append(busy_s, prefill_busy_s)
        gpu_j = float(np.sum(self.gpu_power_w(freq_mhz, active) * busy_all))
        gap_s = overhead_s * (len(steps) + 1)
        gpu_j += float(self.gpu_power_w(freq_mhz, board.gpu_idle_activity)) * gap_s
        service_s = prefill_s + decode_s
        dram_j = (step_bytes.sum() + self.weight_bytes) * board.dram_energy_j_per_byte
        energy_j = (board.base_power_w + board.host_active_power_w) * service_s + gpu_j + dram_j
        return BatchCost(service_s=service_s, energy_j=energy_j, ttft_s=prefill_s)

    def batch_cost(
        self, freq_mhz: float, prompt_tokens: Sequence[int], output_tokens: int, rng: np.random.Generator
    ) -> BatchCost:
        """One sample: the expected cost with log-normal noise on time and energy."""
        mean = self.expected_cost(freq_mhz, prompt_tokens, output_tokens)
        time_factor = float(np.exp(rng.normal(0.0, SERVICE_NOISE_SIGMA)))
        energy_factor = time_factor * float(np.exp(rng.normal(0.0, ENERGY_NOISE_SIGMA)))
        return BatchCost(
            service_s=mean.service_s * time_factor,
            energy_j=None if mean.energy_j is None else mean.energy_j * energy_factor,
            ttft_s=None if mean.ttft_s is None else mean.ttft_s * time_factor,
        )

    def step_cost(
        self, freq_mhz: float, decode_context_tokens: Sequence[int], prefill_prompt_tokens: Sequence[int]
    ) -> BatchCost:
        """Noise-free time and energy of one decode step of continuous batching (`ttft_s` is None).

        The step decodes one token of each running sequence (`decode_context_tokens`: each one's prompt plus the
        tokens it has so far) and prefills the sequences that join at it (`prefill_prompt_tokens`), in one
        launch: the roofline terms of `expected_cost` summed over the step's work. A static batch is one
        prefill step and output_tokens − 1 decode steps, and costs exactly what `expected_cost` says.
        """
        arch, rt, board = self.arch, self.runtime, self.board
        contexts = np.asarray(decode_context_tokens, dtype=float)
        prompts = np.asarray(prefill_prompt_tokens, dtype=float)
        peak, bw = self._peak_flops(freq_mhz), self._bandwidth_bps(freq_mhz)
        q_dim = arch.num_heads * arch.head_dim
        overhead_s = self._step_overhead_s(freq_mhz, len(contexts) + len(prompts))
        compute_s = (
            2 * arch.matmul_params_per_token * prompts.sum() + 2 * arch.num_layers * q_dim * (prompts**2).sum()
        ) / (peak * rt.prefill_flops_efficiency)
        compute_s += (
            2 * arch.matmul_params_per_token * len(contexts) + 4 * arch.num_layers * q_dim * contexts.sum()
        ) / (peak * rt.decode_flops_efficiency)
        dram_bytes = self.weight_bytes + contexts.sum() * arch.kv_bytes_per_token
        busy_s = max(compute_s, (dram_bytes + prompts.sum() * arch.kv_bytes_per_token) / bw)
        activity = 0.3 + 0.7 * compute_s / busy_s
        gpu_j = float(self.gpu_power_w(freq_mhz, activity)) * busy_s
        gpu_j += float(self.gpu_power_w(freq_mhz, board.gpu_idle_activity)) * overhead_s
        service_s = busy_s + overhead_s
        energy_j = (board.base_power_w + board.host_active_power_w) * service_s + gpu_j
        return BatchCost(
            service_s=service_s, energy_j=energy_j + dram_bytes * board.dram_energy_j_per_byte, ttft_s=None
        )

    def sample_step_cost(
        self,
        freq_mhz: float,
        decode_context_tokens: Sequence[int],
        prefill_prompt_tokens: Sequence[int],
        rng: np.random.Generator,
    ) -> BatchCost:
        """One sample of a step: the expected step cost with the batch's log-normal noise."""
        return _noisy(self.step_cost(freq_mhz, decode_context_tokens, prefill_prompt_tokens), rng)


class ProfileModel:
    """Replays a measured profile: each batch draws one recorded sample of its config at random."""

    def __init__(self, table: ProfileTable) -> None:
        self.table = table
        self.freqs_mhz = table.freqs_mhz
        self.has_energy = table.has_energy

    def describe(self) -> dict[str, object]:
        """The profile's metadata and source file."""
        return {"profile": str(self.table.source), **self.table.metadata}

    def idle_power_w(self, freq_mhz: float) -> float:
        """The profile's `idle_power_w` (the same at every clock: profiles record one value)."""
        return self.table.idle_power_w

    def batch_cost(
        self, freq_mhz: float, prompt_tokens: Sequence[int], output_tokens: int, rng: np.random.Generator
    ) -> BatchCost:
        """A recorded (latency, energy) sample of (freq, batch size); TTFT is not recorded."""
        samples = self.table.samples(freq_mhz, len(prompt_tokens))
        latency_s, energy_j = samples[rng.integers(len(samples))]
        return BatchCost(service_s=float(latency_s), energy_j=float(energy_j) if self.has_energy else None, ttft_s=None)

    def sample_step_cost(
        self,
        freq_mhz: float,
        decode_context_tokens: Sequence[int],
        prefill_prompt_tokens: Sequence[int],
        rng: np.random.Generator,
    ) -> BatchCost:
        """One step of continuous batching, from the profile: a recorded batch of the step's sequence count
        (the nearest recorded size at or above it, else the largest) spread evenly over its output tokens.

        An approximation: a profile records whole batches, so a step's prefill and context length are not seen.
        """
        active = len(decode_context_tokens) + len(prefill_prompt_tokens)
        sizes = [b for b in self.table.batch_sizes if b >= active] or [max(self.table.batch_sizes)]
        output_tokens = _output_tokens(self.table)
        cost = self.batch_cost(freq_mhz, [0] * min(sizes), 1, rng)
        return BatchCost(
            service_s=cost.service_s / output_tokens,
            energy_j=None if cost.energy_j is None else cost.energy_j / output_tokens,
            ttft_s=None,
        )


def _noisy(mean: BatchCost, rng: np.random.Generator) -> BatchCost:
    """`mean` with log-normal noise on time, and on energy on top of time's."""
    time_factor = float(np.exp(rng.normal(0.0, SERVICE_NOISE_SIGMA)))
    energy_factor = time_factor * float(np.exp(rng.normal(0.0, ENERGY_NOISE_SIGMA)))
    return BatchCost(
        service_s=mean.service_s * time_factor,
        energy_j=None if mean.energy_j is None else mean.energy_j * energy_factor,
        ttft_s=None if mean.ttft_s is None else mean.ttft_s * time_factor,
    )


def _output_tokens(table: ProfileTable) -> float:
    """The profile's `# output_tokens:` (decode steps per recorded batch); ConfigError when it has none."""
    try:
        tokens = float(table.metadata["output_tokens"])
    except (KeyError, ValueError):
        raise ConfigError(
            f"{table.source}: continuous batching on a profile needs its '# output_tokens:' line (a number)"
        ) from None
    if not tokens >= 1:
        raise ConfigError(f"{table.source}: '# output_tokens:' must be at least 1, got {tokens:g}")
    return tokens
