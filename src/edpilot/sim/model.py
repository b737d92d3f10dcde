"""Performance and power of one static batch on a simulated board: analytic or replayed from a profile.

Analytic model (docs/simulator.md): prefill is bound by compute (∝ 1/f); each decode step is bound by
the larger of weight+KV bytes over memory bandwidth and the batch's matmul FLOPs, plus a per-step
overhead of kernel launches (GPU cycles, ∝ 1/f) and host work; power = module base + GPU static
(∝ V) + GPU switching (∝ f·V²·activity) + DRAM energy per byte. The memory clock (EMC) scales the DRAM's
peak bandwidth and its background power (`emc_mhz`, default: the top level); `phase_cost` prices prefill at
one (GPU, EMC) level and decode at another, with the modelled delay of the switch between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edpilot.architectures import ModelArch
from edpilot.errors import ConfigError
from edpilot.sim.constants import (
    EMC_SWITCH_S,
    ENERGY_NOISE_SIGMA,
    GPU_SWITCH_S,
    GPU_VOLTAGE_CURVE,
    SERVICE_NOISE_SIGMA,
    TRANSITION_STALL_S,
    BoardSpec,
    RuntimeSpec,
)
from edpilot.sim.profile import ProfileTable
from edpilot.space import Config


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
        self.emc_levels_mhz = board.emc_levels_mhz
        self.weight_bytes = arch.total_params * runtime.weight_bits_per_param[arch.name] / 8

    def describe(self) -> dict[str, object]:
        """Board, model and runtime names."""
        return {"board": self.board.name, "model": self.arch.name, "runtime": self.runtime.name}

    def gpu_power_w(self, freq_mhz: float, activity: float | np.ndarray) -> float | np.ndarray:
        """GPU static + switching power (W) at `freq_mhz` for an activity factor in [0, 1]."""
        b, v = self.board, gpu_voltage_v(freq_mhz)
        return b.sm_count * (b.gpu_leak_w_per_sm_per_v * v + b.gpu_dyn_w_per_sm_per_mhz_v2 * freq_mhz * v**2 * activity)

    def idle_power_w(self, freq_mhz: float, *, emc_mhz: float | None = None) -> float:
        """Module power (W) with the GPU pinned at `freq_mhz` (and the memory clock at `emc_mhz`) and idle."""
        base_w = self.board.base_power_w + self.emc_power_delta_w(emc_mhz)
        return base_w + float(self.gpu_power_w(freq_mhz, self.board.gpu_idle_activity))

    def emc_power_delta_w(self, emc_mhz: float | None) -> float:
        """DRAM background power (W) at `emc_mhz` less that at the top level (≤ 0; 0 for None)."""
        if emc_mhz is None:
            return 0.0
        self._check_emc(emc_mhz)
        f, w = zip(*self.board.dram_background_w)
        return float(np.interp(emc_mhz, f, w) - np.interp(self.emc_levels_mhz[-1], f, w))

    def _check_emc(self, emc_mhz: float) -> None:
        if emc_mhz not in self.emc_levels_mhz:
            levels = ", ".join(f"{v:g}" for v in self.emc_levels_mhz)
            raise ConfigError(f"{emc_mhz:g} MHz is not a memory clock level of {self.board.name} ({levels})")

    def _peak_flops(self, freq_mhz: float) -> float:
        return self.board.sm_count * self.board.fp16_flops_per_cycle_per_sm * freq_mhz * 1e6

    def _bandwidth_bps(self, freq_mhz: float, emc_mhz: float | None = None) -> float:
        """Achieved DRAM bandwidth (B/s): the lower of what the memory clock delivers and what the SMs draw."""
        rt = self.runtime
        emc_scale = 1.0 if emc_mhz is None else emc_mhz / self.emc_levels_mhz[-1]
        scale = min(emc_scale, freq_mhz / rt.bandwidth_saturation_mhz)
        return self.board.mem_bandwidth_gbps * 1e9 * rt.mem_bandwidth_efficiency * min(1.0, scale)

    def _step_overhead_s(self, freq_mhz: float, batch_size: int) -> float:
        rt = self.runtime
        launch_s = self.arch.num_layers * rt.kernels_per_layer * rt.cycles_per_kernel / (freq_mhz * 1e6)
        return launch_s + rt.host_s_per_step + batch_size * rt.host_s_per_sequence_step

    def expected_cost(
        self, freq_mhz: float, prompt_tokens: Sequence[int], output_tokens: int, *, emc_mhz: float | None = None
    ) -> BatchCost:
        """Noise-free service time, energy and TTFT of one batch (memory clock at `emc_mhz`, default the top)."""
        arch, rt, board = self.arch, self.runtime, self.board
        b = len(prompt_tokens)
        prompts = np.asarray(prompt_tokens, dtype=float)
        peak, bw = self._peak_flops(freq_mhz), self._bandwidth_bps(freq_mhz, emc_mhz)
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
        base_w = board.base_power_w + self.emc_power_delta_w(emc_mhz)
        energy_j = (base_w + board.host_active_power_w) * service_s + gpu_j + dram_j
        return BatchCost(service_s=service_s, energy_j=energy_j, ttft_s=prefill_s)

    def phase_cost(
        self, prefill: Levels, decode: Levels, prompt_tokens: Sequence[int], output_tokens: int
    ) -> PhaseCost:
        """Noise-free cost of a batch whose prefill runs at one (GPU, EMC) level and its decode at another.

        The engine writes the decode levels at the first decode step and the prefill levels back when the batch
        ends. Each switch stalls for TRANSITION_STALL_S (idle) and the new levels take effect only after
        `switch_delay_s`: until then the work runs at the old levels (the decode's start at the prefill levels,
        and, taken at its worst, the next batch's prefill start at the decode levels: batches back to back).
        Decode is priced as uniform work over its steps. Equal levels cost exactly `expected_cost`.
        """
        pre_new = self.expected_cost(prefill.gpu_mhz, prompt_tokens, 1, emc_mhz=prefill.emc_mhz)
        pre_old = self.expected_cost(decode.gpu_mhz, prompt_tokens, 1, emc_mhz=decode.emc_mhz)
        dec_new = _decode_part(
            self.expected_cost(decode.gpu_mhz, prompt_tokens, output_tokens, emc_mhz=decode.emc_mhz), pre_old
        )
        dec_old = _decode_part(
            self.expected_cost(prefill.gpu_mhz, prompt_tokens, output_tokens, emc_mhz=prefill.emc_mhz), pre_new
        )
        delay_s = switch_delay_s(prefill, decode)
        if delay_s == 0.0:
            return PhaseCost(pre_new.service_s, _j(pre_new), dec_new.service_s, _j(dec_new), 0.0, 0.0)
        prefill_s, prefill_j = _blend(pre_old, pre_new, delay_s)
        decode_s, decode_j = _blend(dec_old, dec_new, delay_s)
        stall_s = 2 * TRANSITION_STALL_S
        stall_j = stall_s * self.idle_power_w(prefill.gpu_mhz, emc_mhz=prefill.emc_mhz)
        return PhaseCost(prefill_s, prefill_j, decode_s, decode_j, stall_s, stall_j)

    def batch_cost(
        self,
        freq_mhz: float,
        prompt_tokens: Sequence[int],
        output_tokens: int,
        rng: np.random.Generator,
        *,
        emc_mhz: float | None = None,
    ) -> BatchCost:
        """One sample: the expected cost with log-normal noise on time and energy."""
        return _noisy(self.expected_cost(freq_mhz, prompt_tokens, output_tokens, emc_mhz=emc_mhz), rng)

    def step_cost(
        self,
        freq_mhz: float,
        decode_context_tokens: Sequence[int],
        prefill_prompt_tokens: Sequence[int],
        *,
        emc_mhz: float | None = None,
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
        peak, bw = self._peak_flops(freq_mhz), self._bandwidth_bps(freq_mhz, emc_mhz)
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
        base_w = board.base_power_w + self.emc_power_delta_w(emc_mhz)
        energy_j = (base_w + board.host_active_power_w) * service_s + gpu_j
        return BatchCost(
            service_s=service_s, energy_j=energy_j + dram_bytes * board.dram_energy_j_per_byte, ttft_s=None
        )

    def sample_step_cost(
        self,
        freq_mhz: float,
        decode_context_tokens: Sequence[int],
        prefill_prompt_tokens: Sequence[int],
        rng: np.random.Generator,
        *,
        emc_mhz: float | None = None,
    ) -> BatchCost:
        """One sample of a step: the expected step cost with the batch's log-normal noise."""
        return _noisy(self.step_cost(freq_mhz, decode_context_tokens, prefill_prompt_tokens, emc_mhz=emc_mhz), rng)


@dataclass(frozen=True)
class Levels:
    """The clock levels a phase runs at: GPU (MHz) and memory clock (MHz; None: the board's top level)."""

    gpu_mhz: float
    emc_mhz: float | None = None


@dataclass(frozen=True)
class PhaseCost:
    """A batch priced per phase (s, J): prefill, decode, and the stalls of switching between their levels."""

    prefill_s: float
    prefill_j: float
    decode_s: float
    decode_j: float
    stall_s: float
    stall_j: float

    def batch_cost(self) -> BatchCost:
        """The whole batch: service time, energy, and TTFT (the prefill)."""
        return BatchCost(
            service_s=self.prefill_s + self.decode_s + self.stall_s,
            energy_j=self.prefill_j + self.decode_j + self.stall_j,
            ttft_s=self.prefill_s,
        )


def switch_delay_s(old: Levels, new: Levels) -> float:
    """Time (s) until new levels take effect: GPU 5 ms, memory clock 8 ms, written together (the longer one)."""
    delays = [GPU_SWITCH_S] if old.gpu_mhz != new.gpu_mhz else []
    delays += [EMC_SWITCH_S] if old.emc_mhz != new.emc_mhz else []
    return max(delays, default=0.0)


def _j(cost: BatchCost) -> float:
    assert cost.energy_j is not None  # the analytic model always prices energy
    return cost.energy_j


def _decode_part(whole: BatchCost, prefill: BatchCost) -> BatchCost:
    """The decode steps of a batch: its cost less its prefill's (the model is additive over steps)."""
    return BatchCost(whole.service_s - prefill.service_s, _j(whole) - _j(prefill), None)


def _blend(old: BatchCost, new: BatchCost, delay_s: float) -> tuple[float, float]:
    """Time and energy of work that runs at the old levels for `delay_s`, then at the new ones."""
    if old.service_s <= 0.0:
        return new.service_s, _j(new)
    done = min(1.0, delay_s / old.service_s)
    return (
        done * old.service_s + (1 - done) * new.service_s,
        done * _j(old) + (1 - done) * _j(new),
    )


class EmcView:
    """An AnalyticModel seen at one memory-clock level, which the simulated board's `emc_mhz` knob sets.

    The device and the engine share it, so a batch and the idle time between batches are priced at the level
    the knob holds. Anything it does not price itself (a model function it does not know) is the model's own.
    """

    has_energy = True

    def __init__(self, model: AnalyticModel) -> None:
        self.model = model
        self.freqs_mhz = model.freqs_mhz
        self.emc_levels_mhz = model.emc_levels_mhz
        self.emc_mhz = model.emc_levels_mhz[-1]

    def __getattr__(self, name: str) -> object:
        return getattr(self.model, name)

    def describe(self) -> dict[str, object]:
        """The model's metadata."""
        return self.model.describe()

    def idle_power_w(self, freq_mhz: float) -> float:
        """Idle module power (W) at `freq_mhz` and the memory clock the knob holds."""
        return self.model.idle_power_w(freq_mhz, emc_mhz=self.emc_mhz)

    def expected_cost(self, freq_mhz: float, prompt_tokens: Sequence[int], output_tokens: int) -> BatchCost:
        """Noise-free batch cost at the memory clock the knob holds."""
        return self.model.expected_cost(freq_mhz, prompt_tokens, output_tokens, emc_mhz=self.emc_mhz)

    def batch_cost(
        self, freq_mhz: float, prompt_tokens: Sequence[int], output_tokens: int, rng: np.random.Generator
    ) -> BatchCost:
        """One noisy batch sample at the memory clock the knob holds."""
        return self.model.batch_cost(freq_mhz, prompt_tokens, output_tokens, rng, emc_mhz=self.emc_mhz)

    def step_cost(
        self, freq_mhz: float, decode_context_tokens: Sequence[int], prefill_prompt_tokens: Sequence[int]
    ) -> BatchCost:
        """Noise-free cost of one continuous-batching step at the memory clock the knob holds."""
        return self.model.step_cost(freq_mhz, decode_context_tokens, prefill_prompt_tokens, emc_mhz=self.emc_mhz)

    def sample_step_cost(
        self,
        freq_mhz: float,
        decode_context_tokens: Sequence[int],
        prefill_prompt_tokens: Sequence[int],
        rng: np.random.Generator,
    ) -> BatchCost:
        """One noisy step sample at the memory clock the knob holds."""
        return self.model.sample_step_cost(
            freq_mhz, decode_context_tokens, prefill_prompt_tokens, rng, emc_mhz=self.emc_mhz
        )


class ProfileModel:
    """Replays a measured profile: each batch draws one recorded sample of its config at random.

    A table with an `emc_mhz` column is also the simulated board's memory clock knob (as `EmcView` is for the
    analytic model): `emc_mhz` is the level it holds, the highest at the start.
    """

    def __init__(self, table: ProfileTable) -> None:
        self.table = table
        self.freqs_mhz = table.freqs_mhz
        self.has_energy = table.has_energy
        self.emc_levels_mhz = table.levels_of("emc_mhz")
        self.emc_mhz: float | None = self.emc_levels_mhz[-1] if self.emc_levels_mhz else None

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
        samples = self.table.samples(Config.of(len(prompt_tokens), gpu_mhz=freq_mhz, emc_mhz=self.emc_mhz))
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


def noise_factors(rng: np.random.Generator) -> tuple[float, float]:
    """One batch's log-normal noise: the factor on its time, and on its energy (time's, times its own)."""
    time_factor = float(np.exp(rng.normal(0.0, SERVICE_NOISE_SIGMA)))
    return time_factor, time_factor * float(np.exp(rng.normal(0.0, ENERGY_NOISE_SIGMA)))


def _noisy(mean: BatchCost, rng: np.random.Generator) -> BatchCost:
    """`mean` with log-normal noise on time, and on energy on top of time's."""
    time_factor, energy_factor = noise_factors(rng)
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
