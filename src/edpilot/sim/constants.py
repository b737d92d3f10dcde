"""Every constant of the simulated platform, in one place, each with its source.

"assumed" marks a value we chose because no public measurement was at hand; docs/simulator.md
explains each choice. Units are in the names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Jetson AGX Orin GPU (ga10b) devfreq levels on JetPack 5, `available_frequencies` in Hz / 1e6.
# Source: /sys/devices/17000000.ga10b/devfreq/17000000.ga10b/available_frequencies on an AGX Orin 64GB.
ORIN_GPU_LEVELS_MHZ: tuple[float, ...] = (
    114.75,
    216.75,
    318.75,
    420.75,
    522.75,
    624.75,
    726.75,
    828.75,
    930.75,
    1032.75,
    1134.75,
    1236.75,
    1300.5,
)

# The GPU levels of JetPack 6 (r36), node 17000000.gpu: a 102 MHz grid from 306 MHz. Published
# `available_frequencies` listings of r36 Orin boards show 306, 408, 510, 612, 714, 816 and 918 MHz
# (an Orin NX in its 25 W mode; AGX Orin scripts on r36 pin 1020, 1122 and 1300.5 MHz on the same grid).
ORIN_JP6_GPU_LEVELS_MHZ: tuple[float, ...] = (306.0, 408.0, 510.0, 612.0, 714.0, 816.0, 918.0)
# The AGX Orin 32GB's GPU cap in MAXN, its top level (the paper's default config runs at it). Assumed: no
# public r36 listing of a 32GB module confirms that devfreq lists it beside 918 MHz.
ORIN_32GB_MAXN_GPU_MHZ = 930.75


# Jetson AGX Orin's lockable memory-clock (EMC) levels, MHz: the BPMP's EMC table (`possible_rates`, kHz / 1e3).
# Source: the levels the issue cites for the AGX Orin (204, 665.6, 2133, 3199 MHz); a published Orin NX listing
# ("204000 665600 2133000 (kHz)") shows the same lower points; 3199 MHz is the MAXN top (6400 MT/s LPDDR5).
ORIN_EMC_LEVELS_MHZ: tuple[float, ...] = (204.0, 665.6, 2133.0, 3199.0)

# DRAM and memory-controller background power (refresh, PHY, EMC clock tree) against the EMC clock: (MHz, W).
# Assumed: no public per-level measurement of the AGX Orin's DRAM rail was at hand; an affine shape in the clock
# (I/O and clock-tree power ∝ f, refresh constant) with ~1.6 W at the top level and ~0.35 W at the bottom.
# The module's base_power_w is taken at the top level: a lower level lowers it by the difference.
DRAM_BACKGROUND_W: tuple[tuple[float, float], ...] = ((204.0, 0.35), (665.6, 0.55), (2133.0, 1.15), (3199.0, 1.6))

# How long a new clock level takes to take effect after it is written, and the stall of the transition itself.
# Source: a measurement study on Jetson Orin Nano/NX (arXiv 2606.16106): transition stalls stay below 100 µs,
# the new operating point takes ~1/5/8 ms (CPU/GPU/EMC) to take effect. The stall is taken at its bound.
GPU_SWITCH_S = 5e-3
EMC_SWITCH_S = 8e-3
TRANSITION_STALL_S = 100e-6


@dataclass(frozen=True)
class BoardSpec:
    """A Jetson module as the performance/power model sees it."""

    name: str
    freqs_mhz: tuple[float, ...]
    sm_count: int
    fp16_flops_per_cycle_per_sm: float  # dense tensor-core FP16
    mem_bandwidth_gbps: float  # DRAM peak at the top memory-clock level, GB/s (∝ the EMC clock below it)
    base_power_w: float  # module power with the GPU idle (CPU, SoC, DRAM refresh, regulators)
    host_active_power_w: float  # extra CPU power while the engine's host thread drives a batch
    gpu_leak_w_per_sm_per_v: float  # GPU static power per SM per volt at its rail voltage
    gpu_dyn_w_per_sm_per_mhz_v2: float  # GPU switching power per SM at full activity, per MHz·V²
    gpu_idle_activity: float  # fraction of full switching power a pinned but idle GPU draws
    dram_energy_j_per_byte: float
    level_table: str = "JetPack 5"  # whose devfreq level table `freqs_mhz` is
    assumed_freqs_mhz: tuple[float, ...] = ()  # levels no public listing confirms
    emc_levels_mhz: tuple[float, ...] = ORIN_EMC_LEVELS_MHZ  # memory-clock levels; the last is the top
    dram_background_w: tuple[tuple[float, float], ...] = DRAM_BACKGROUND_W  # (EMC MHz, W)


# Voltage of the GPU rail against clock (MHz, V). Assumed: the shape of a typical DVFS table
# (flat floor, then roughly linear); NVIDIA does not publish the ga10b table.
GPU_VOLTAGE_CURVE: tuple[tuple[float, float], ...] = (
    (114.75, 0.60),
    (522.75, 0.60),
    (828.75, 0.72),
    (1032.75, 0.82),
    (1300.5, 0.96),
)

_ORIN_COMMON: dict[str, Any] = dict(
    fp16_flops_per_cycle_per_sm=2048.0,  # 64 tensor cores × 256 FP16 FMA/clk over 16 SMs: 42.5 TFLOPS at 1.3 GHz
    mem_bandwidth_gbps=204.8,  # 256-bit LPDDR5 at 6400 MT/s (Jetson AGX Orin data sheet)
    base_power_w=6.5,  # assumed: typical AGX Orin module idle reported by jtop/tegrastats (5-8 W)
    host_active_power_w=2.0,  # assumed: one busy Cortex-A78AE core and its cluster
    gpu_leak_w_per_sm_per_v=0.15,  # assumed: ~2.3 W static for 16 SMs at 0.96 V
    gpu_dyn_w_per_sm_per_mhz_v2=0.00108,  # assumed: ~20.7 W switching for 16 SMs at 1300.5 MHz, 0.96 V
    gpu_idle_activity=0.04,  # assumed: clock-gated idle SMs at a pinned clock
    dram_energy_j_per_byte=40e-12,  # LPDDR5 ~5 pJ/bit access energy (Micron LPDDR5 power notes)
)

BOARDS: dict[str, BoardSpec] = {
    # Jetson AGX Orin 64GB: 2048 CUDA cores in 16 SMs, up to 1300.5 MHz (MAXN), JetPack 5's levels.
    "orin-agx-64gb": BoardSpec(name="orin-agx-64gb", freqs_mhz=ORIN_GPU_LEVELS_MHZ, sm_count=16, **_ORIN_COMMON),
    # Jetson AGX Orin 32GB: 1792 CUDA cores in 14 SMs, up to 930.75 MHz in MAXN (the paper's board). JetPack 6's
    # levels (the paper's 306 and 816 MHz lie on them, not on JetPack 5's), capped at 930.75 MHz.
    "orin-agx-32gb": BoardSpec(
        name="orin-agx-32gb",
        freqs_mhz=(*ORIN_JP6_GPU_LEVELS_MHZ, ORIN_32GB_MAXN_GPU_MHZ),
        level_table="JetPack 6",
        assumed_freqs_mhz=(ORIN_32GB_MAXN_GPU_MHZ,),
        sm_count=14,
        **_ORIN_COMMON,
    ),
}
DEFAULT_BOARD = "orin-agx-32gb"


@dataclass(frozen=True)
class RuntimeSpec:
    """How efficiently an inference runtime uses the board (llama.cpp with GGUF weights)."""

    name: str
    weight_bits_per_param: dict[str, float]  # per model: GGUF file size × 8 / parameter count
    prefill_flops_efficiency: float  # achieved / peak dense FP16 during prompt processing
    decode_flops_efficiency: float  # achieved / peak during batched decode matmuls
    mem_bandwidth_efficiency: float  # achieved / peak DRAM bandwidth when streaming weights
    bandwidth_saturation_mhz: float  # below this GPU clock the SMs cannot keep DRAM busy
    kernels_per_layer: int  # GPU kernels launched per layer per step
    cycles_per_kernel: float  # fixed GPU cycles per kernel (launch tail, sync)
    host_s_per_step: float  # CPU time per decode step (graph build, launch)
    host_s_per_sequence_step: float  # CPU sampling time per sequence per step


LLAMA_CPP_Q5_K_M = RuntimeSpec(
    name="llama.cpp-Q5_K_M",
    # File sizes of the public Q5_K_M GGUFs: Llama-3.2-1B ≈ 0.91 GB, Qwen2.5-3B ≈ 2.44 GB.
    weight_bits_per_param={"llama-3.2-1b": 5.9, "qwen2.5-3b": 6.3, "qwen2.5-0.5b": 6.8, "tiny": 16.0},
    prefill_flops_efficiency=0.35,  # assumed
    decode_flops_efficiency=0.20,  # assumed: quantized mat-mat with on-the-fly dequantization
    mem_bandwidth_efficiency=0.65,  # assumed: typical of llama.cpp decode on LPDDR boards
    bandwidth_saturation_mhz=600.0,  # assumed
    kernels_per_layer=14,  # assumed: norm, q/k/v, rope×2, attention, o, norm, gate/up, act, down, adds
    cycles_per_kernel=3000.0,  # assumed
    host_s_per_step=1.5e-3,  # assumed
    host_s_per_sequence_step=0.1e-3,  # assumed
)

# Per-batch multiplicative noise (log-normal sigma). Assumed: run-to-run spread of llama.cpp batches.
SERVICE_NOISE_SIGMA = 0.02
ENERGY_NOISE_SIGMA = 0.03
