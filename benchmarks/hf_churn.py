"""Time of a continuous-batching step on the hf engine while sequences keep joining and leaving.

    python benchmarks/hf_churn.py --slots 24 --steps 150 [--model llama-3.2-1b] [--layers 16]

The slots are kept full: every sequence that ends is replaced at once by a new one (a built-in prompt, an answer of
8–24 tokens), so most steps change the membership. Prints the mean wall time per step after 20 warm-up steps, and
in how many steps the membership changed. `--layers` rebuilds the model's architecture with that many layers (the
`tiny` architecture with 16 layers is a CPU stand-in for a GPU's per-operation overhead). CUDA when torch sees it.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import random
import time

import torch

from edpilot import architectures
from edpilot.engine.hf import HfEngine
from edpilot.workload import Request, builtin_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=24)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--layers", type=int, default=None, help="the architecture with this many layers")
    args = parser.parse_args()
    model = args.model
    if args.layers is not None:
        model = f"{args.model}-{args.layers}l"
        base = architectures.ARCHITECTURES[args.model]
        architectures.ARCHITECTURES[model] = dataclasses.replace(base, name=model, num_layers=args.layers)
    cuda = torch.cuda.is_available()
    engine = HfEngine(model, device="cuda" if cuda else "cpu", seed=0)
    prompts, rng, ids = builtin_prompts(), random.Random(0), itertools.count()

    def add() -> None:
        engine.add(Request(next(ids), 0.0, rng.choice(prompts), 20, rng.randint(8, 24)))

    for _ in range(args.slots):
        add()
    for _ in range(20):
        for _ in engine.step().finished:
            add()
    if cuda:
        torch.cuda.synchronize()
    changed = 0
    start_s = time.perf_counter()
    for _ in range(args.steps):
        finished = engine.step().finished
        changed += bool(finished)
        for _ in finished:
            add()
    step_ms = 1000 * (time.perf_counter() - start_s) / args.steps
    print(f"{model}, {args.slots} slots: {step_ms:.2f} ms per step; the membership changed in {changed}/{args.steps}")


if __name__ == "__main__":
    main()
