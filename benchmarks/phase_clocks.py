"""Per-phase clocks against one clock: the oracle from the simulator's steady-state costs (no search).

For each model, prompt length (~100 and ~1500 tokens, 70 output tokens) and Poisson arrival rate, every config
is priced noise-free (`AnalyticModel.phase_cost`: switch stalls and delays included) and scored by its
steady-state EDP (`SteadyForecast`: mean latency × energy per request, idle time between batches at the
prefill's levels). Four grids, each × batch:

- `gpu`:       one GPU level (EMC at the top) — today's two-axis grid;
- `gpu_emc`:   one (GPU, EMC) level;
- `phase_gpu`: prefill GPU level × decode GPU level (EMC at the top) — the issue's per-phase grid;
- `phase_all`: prefill (GPU, EMC) × decode (GPU, EMC).

The gain of per-phase over one clock is 1 − best phase_gpu / best gpu (and phase_all / gpu_emc).

    python benchmarks/phase_clocks.py [--board orin-agx-32gb] [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np

from edpilot.architectures import get_architecture
from edpilot.objective import Objective
from edpilot.search.forecast import SteadyForecast
from edpilot.serving.traffic import Traffic
from edpilot.sim import AnalyticModel, Levels
from edpilot.sim.constants import BOARDS, LLAMA_CPP_Q5_K_M
from edpilot.space import ConfigSpace

MODELS = ("llama-3.2-1b", "qwen2.5-3b")
PROMPTS = (100, 1500)
OUTPUT_TOKENS = 70
RATES_PER_S = {100: (0.5, 1.0, 2.0, 4.0), 1500: (0.1, 0.25, 0.5, 1.0)}
BATCH_SIZES = (1, 2, 4, 8, 12, 16, 20, 24, 28)


def priced(
    model: AnalyticModel, pairs: list[tuple[Levels, Levels]], prompt: int, *, idle_at_decode: bool = False
) -> dict[str, np.ndarray]:
    """Noise-free batch time (s), energy (J) and idle power (W) of every (prefill, decode, batch), pair-major.

    Between batches the board idles at the prefill levels (the runner puts them back when a batch ends);
    `idle_at_decode` prices it at the decode levels instead, to show how much of a gain is idle power."""
    rows = []
    for prefill, decode in pairs:
        idle = decode if idle_at_decode else prefill
        idle_w = model.idle_power_w(idle.gpu_mhz, emc_mhz=idle.emc_mhz)
        for b in BATCH_SIZES:
            cost = model.phase_cost(prefill, decode, [prompt] * b, OUTPUT_TOKENS).batch_cost()
            rows.append((cost.service_s, cost.energy_j, idle_w))
    service_s, energy_j, idle_w = (np.array(col, dtype=float) for col in zip(*rows))
    return {"service_s": service_s, "energy_per_batch_j": energy_j, "idle_power_w": idle_w}


def best(pairs: list[tuple[Levels, Levels]], hw: dict[str, np.ndarray], traffic: Traffic) -> dict[str, object]:
    """The config of lowest steady-state EDP among those that keep up (None when none does)."""
    # The forecast needs each config's batch size only: one placeholder level per pair, batch-minor as `priced`.
    space = ConfigSpace(tuple(float(i + 1) for i in range(len(pairs))), BATCH_SIZES)
    outlook = SteadyForecast(space, traffic).outlook(Objective("edp").bind(None), **hw)  # type: ignore[arg-type]
    cost = np.where(outlook.keeps_up, outlook.cost, np.inf)
    i = int(np.argmin(cost))
    if not np.isfinite(cost[i]):
        return {"edp": None}
    prefill, decode = pairs[i // len(BATCH_SIZES)]
    return {
        "edp": float(cost[i]),
        "prefill": [prefill.gpu_mhz, prefill.emc_mhz],
        "decode": [decode.gpu_mhz, decode.emc_mhz],
        "batch_size": BATCH_SIZES[i % len(BATCH_SIZES)],
        "energy_per_request_j": float(outlook.energy_per_request_j[i]),
        "mean_latency_s": float(outlook.mean_latency_s[i]),
    }


def grids(model: AnalyticModel) -> dict[str, list[tuple[Levels, Levels]]]:
    """The four grids as (prefill, decode) level pairs."""
    top = model.emc_levels_mhz[-1]
    gpu = [Levels(f, top) for f in model.freqs_mhz]
    both = [Levels(f, e) for f in model.freqs_mhz for e in model.emc_levels_mhz]
    return {
        "gpu": [(x, x) for x in gpu],
        "gpu_emc": [(x, x) for x in both],
        "phase_gpu": list(itertools.product(gpu, gpu)),
        "phase_all": list(itertools.product(both, both)),
    }


def run(board: str) -> list[dict[str, object]]:
    """Every (model, prompt, rate): the best config of each grid and the per-phase gains."""
    out = []
    for name in MODELS:
        model = AnalyticModel(BOARDS[board], get_architecture(name), LLAMA_CPP_Q5_K_M)
        pairs = grids(model)
        for prompt in PROMPTS:
            hw = {g: priced(model, p, prompt) for g, p in pairs.items()}
            hw["phase_all_idle_decode"] = priced(model, pairs["phase_all"], prompt, idle_at_decode=True)
            for rate in RATES_PER_S[prompt]:
                traffic = Traffic("poisson", rate, prompt, OUTPUT_TOKENS)
                row: dict[str, object] = {"model": name, "prompt_tokens": prompt, "rate_per_s": rate}
                row |= {g: best(pairs[g], hw[g], traffic) for g in pairs}
                idle_decode = best(pairs["phase_all"], hw["phase_all_idle_decode"], traffic)
                row["gain_phase_gpu"] = _gain(row["phase_gpu"], row["gpu"])
                row["gain_phase_all"] = _gain(row["phase_all"], row["gpu_emc"])
                row["gain_phase_all_idle_at_decode"] = _gain(idle_decode, row["gpu_emc"])
                out.append(row)
    return out


def _gain(phased: object, single: object) -> float | None:
    a, b = phased["edp"], single["edp"]  # type: ignore[index]
    return None if a is None or b is None else 1.0 - a / b


def _levels(x: dict[str, object]) -> str:
    if x["edp"] is None:
        return "none keeps up"
    (pg, pe), (dg, de) = x["prefill"], x["decode"]  # type: ignore[misc]
    levels = f"{pg:g}/{pe:g}" if (pg, pe) == (dg, de) else f"{pg:g}/{pe:g} → {dg:g}/{de:g}"
    return f"{levels}, b{x['batch_size']}"


def _pct(gain: object) -> str:
    return "–" if gain is None else f"{100 * gain:.1f} %"  # type: ignore[operator]


def markdown(rows: list[dict[str, object]]) -> str:
    """One table row per (model, prompt, rate): best configs (GPU/EMC MHz, batch) and gains."""
    lines = [
        "| model | prompt | rate (req/s) | best one clock | best per-phase GPU | gain | best (GPU, EMC) | "
        "best per-phase (GPU, EMC) | gain | gain, idling at decode levels |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        g1, g2, g3 = r["gain_phase_gpu"], r["gain_phase_all"], r["gain_phase_all_idle_at_decode"]
        lines.append(
            f"| {r['model']} | {r['prompt_tokens']} | {r['rate_per_s']:g} | {_levels(r['gpu'])} | "  # type: ignore[arg-type]
            f"{_levels(r['phase_gpu'])} | {_pct(g1)} | "  # type: ignore[arg-type]
            f"{_levels(r['gpu_emc'])} | {_levels(r['phase_all'])} | "  # type: ignore[arg-type]
            f"{_pct(g2)} | {_pct(g3)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="orin-agx-32gb", choices=list(BOARDS))
    parser.add_argument("--json", help="write every row here")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    rows = run(args.board)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    print(markdown(rows) if args.markdown else json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
