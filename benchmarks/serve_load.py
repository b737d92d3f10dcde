"""Load test of `edpilot serve --engine sim`: Poisson arrivals from N clients, answers checked, online vs fixed.

    python benchmarks/serve_load.py [--rates 1,2,8] [--speed 20] [--clients 8] [--requests 150] [--drift]

One Poisson stream of rate λ (simulated req/s) is dealt round-robin to N clients, which send at those
times (open loop: the rate does not depend on the answers). Every prompt carries its id (`rid-P-C-M`)
and the sim engine's filler answer repeats the prompt, so a lost or duplicated answer, or one that
belongs to another prompt, is counted. Latency is measured by the client on the wall clock and converted
to simulated seconds (× speed); energy per request is the board's total energy over the recorded rounds
(idle time included) ÷ requests. Configs compared at each rate: online tuning, the fixed baseline
(930.75 MHz, 28), and `--config` of an offline `edpilot tune` run at the same λ (Poisson). `--drift`
runs online tuning with the rate changing 4× mid-way and prints the config of every round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openai

MODEL = "llama-3.2-1b"
OUTPUT_TOKENS = 70
FILLER = "please summarise the following note about energy efficient inference on edge devices"


def start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start `edpilot serve ARGS --port 0`; returns the process and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edpilot", "serve", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"serving on (http://\S+)", line)
        if match:
            return proc, match.group(1)
    raise RuntimeError(f"the server did not start (exit {proc.wait()})")


async def load(url: str, *, phases: list[tuple[float, int]], clients: int, speed: float, seed: int) -> dict:
    """Send every phase's requests (rate req/s simulated, count) from `clients` Poisson clients."""
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=3600)
    rng = np.random.default_rng(seed)
    latencies_s: dict[str, float] = {}
    answers: dict[str, list[str]] = {}
    errors: list[str] = []

    sends_s: list[float] = []

    async def one(rid: str) -> None:
        t0 = time.monotonic()
        sends_s.append(t0)
        try:
            r = await client.completions.create(model=MODEL, prompt=f"{rid} {FILLER}", max_tokens=OUTPUT_TOKENS)
        except openai.APIError as exc:
            errors.append(f"{rid}: {type(exc).__name__}: {exc}")
            return
        latencies_s[rid] = (time.monotonic() - t0) * speed
        answers.setdefault(rid, []).append(r.choices[0].text)

    async def run_client(at_s: np.ndarray, names: list[str]) -> None:
        tasks = []
        for t_s, rid in zip(at_s, names):  # absolute send times: a late wake-up does not slow the rate down
            await asyncio.sleep(max(0.0, t_s - time.monotonic()))
            tasks.append(asyncio.create_task(one(rid)))
        await asyncio.gather(*tasks)

    start_s = time.monotonic()
    sent = 0
    for phase, (rate, count) in enumerate(phases):
        # one Poisson stream of rate λ (simulated), dealt round-robin to the clients
        at_s = time.monotonic() + np.cumsum(rng.exponential(1.0 / rate, size=count)) / speed
        names = [f"rid-{phase}-{i % clients}-{i // clients}" for i in range(count)]
        sent += count
        await asyncio.gather(*(run_client(at_s[c::clients], names[c::clients]) for c in range(clients)))
    wall_s = time.monotonic() - start_s
    await client.close()
    wrong = [rid for rid, texts in answers.items() if any(t.split()[0] != rid for t in texts)]
    lat = np.array(list(latencies_s.values()))
    return {
        "sent": sent,
        "answered": len(answers),
        "lost": sent - len(answers) - len(errors),
        "duplicated": sum(len(t) - 1 for t in answers.values()),
        "wrong_owner": len(wrong),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "offered_rate_per_s": (len(sends_s) - 1) / ((max(sends_s) - min(sends_s)) * speed),
        "throughput_per_s": len(answers) / (wall_s * speed),
        "p50_latency_s": float(np.percentile(lat, 50)),
        "p95_latency_s": float(np.percentile(lat, 95)),
    }


def rounds_of(log: Path) -> list[dict]:
    return [r for r in map(json.loads, log.read_text().splitlines()) if r.get("type") == "round"]


def energy_per_request_j(rounds: list[dict]) -> float | None:
    served = [r for r in rounds if r.get("energy_per_request_j") is not None]
    n = sum(r["requests"] for r in served)
    return sum(r["energy_per_request_j"] * r["requests"] for r in served) / n if n else None


def scenario(
    name: str, serve_args: list[str], *, phases: list[tuple[float, int]], clients: int, speed: float, seed: int
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "serve.jsonl"
        proc, url = start(
            ["--device", "sim", "--sim-speed", str(speed), "--batching", "static", "--output", str(log), *serve_args]
        )
        try:
            result = asyncio.run(load(url, phases=phases, clients=clients, speed=speed, seed=seed))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        rounds = rounds_of(log)
    half = rounds[len(rounds) // 2 :]
    result |= {
        "name": name,
        "rounds": len(rounds),
        "energy_per_request_j": energy_per_request_j(rounds),
        "energy_per_request_j_second_half": energy_per_request_j(half),
        "edp_second_half": _mean([r["edp"] for r in half if r.get("edp") is not None]),
        "configs": [(r["freq_mhz"], r["batch_size"], r.get("note")) for r in rounds],
    }
    return result


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1,2,8", help="arrival rates (simulated req/s)")
    parser.add_argument("--speed", type=float, default=20.0, help="--sim-speed of the server")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1200, help="requests per run (all clients)")
    parser.add_argument("--drift", action="store_true", help="only the drift run")
    parser.add_argument("--modes", default="online,baseline,tuned", help="which configs to serve at each rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    results = []
    common = dict(clients=args.clients, speed=args.speed, seed=args.seed)
    if args.drift:
        phases = [(2.0, args.requests // 2), (8.0, args.requests)]
        results.append(scenario("drift 2 -> 8 req/s, online", [], phases=phases, **common))
    else:
        for rate in (float(r) for r in args.rates.split(",")):
            phases = [(rate, args.requests)]
            modes = args.modes.split(",")
            if "online" in modes:
                results.append(scenario(f"λ={rate:g} online", [], phases=phases, **common))
            if "baseline" in modes:
                fixed = ["--freq", "930.75", "--batch", "28"]
                results.append(scenario(f"λ={rate:g} baseline", fixed, phases=phases, **common))
            if "tuned" not in modes:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                tuned = Path(tmp) / "tune.jsonl"
                command = [
                    "tune",
                    "--arrivals",
                    "poisson",
                    "--arrival-rate",
                    str(rate),
                    "--output",
                    str(tuned),
                    "--json",
                ]
                subprocess.run([sys.executable, "-m", "edpilot", *command], check=True, capture_output=True)
                name = f"λ={rate:g} tuned offline"
                results.append(scenario(name, ["--config", str(tuned)], phases=phases, **common))
    for r in results:
        configs = r.pop("configs")
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}))
        if args.drift:
            for i, (f, b, note) in enumerate(configs):
                print(f"  round {i:3d}: {f:g} MHz, batch {b}" + (f"   [{note}]" if note else ""))
        r["configs"] = configs
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
