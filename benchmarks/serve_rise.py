"""Live check of `edpilot serve`: a load that rises past a batch's capacity, and a quiet gap that is no drift.

    python benchmarks/serve_rise.py --output DIR [--phases 4:40,0:10,4:30,16:90] -- SERVE_ARGS...

Starts `edpilot serve SERVE_ARGS --port 0 --output DIR/rise.jsonl`, then sends open-loop Poisson load in phases
(`RATE:SECONDS`, wall clock; rate 0 is a quiet gap), each request a short prompt with `max_tokens`. Every line
the server logs is stamped with the seconds since the load began (DIR/server.log). At the end it prints, per
phase, the requests sent and answered and their latency, every round of the run log (config, requests,
keeps-up, mean latency, when it ended) and every traffic line the server logged (first estimate, drift,
re-plan, behind, overloaded) — which is what the check is about: after the rise the server must move within
one round; the quiet gap must raise no drift.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

PROMPT = "Summarise in one line why an edge GPU's clock and batch size change its energy per request."
TRAFFIC_WORDS = ("traffic:", "re-planning", "behind", "overloaded", "serving at", "round ")


def start(args: list[str], log_path: Path, t0: list[float]) -> tuple[subprocess.Popen[str], str]:
    """Start the server; a thread copies its stderr into `log_path`, each line stamped (s since the load)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edpilot", "serve", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    url: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        with log_path.open("w", encoding="utf-8") as log:
            for line in proc.stderr:
                stamp = time.monotonic() - t0[0] if t0 else float("nan")
                log.write(f"{stamp:9.2f} {line}")
                log.flush()
                match = re.search(r"serving on (http://\S+)", line)
                if match and not url:
                    url.append(match.group(1))
                    ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    ready.wait()
    if not url:
        raise SystemExit(f"the server did not start (exit {proc.wait()}); see {log_path}")
    return proc, url[0]


async def load(
    url: str, phases: list[tuple[float, float]], *, max_tokens: int, seed: int
) -> list[tuple[int, float, float | None]]:
    """Open-loop Poisson arrivals per phase; (phase, sent at s, latency s or None when it failed) per request."""
    rng = np.random.default_rng(seed)
    results: list[tuple[int, float, float | None]] = []
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=600.0, limits=httpx.Limits(max_connections=None)) as client:
        model = (await client.get("/v1/models")).json()["data"][0]["id"]
        errors: list[str] = []

        async def one(phase: int) -> None:
            sent = time.monotonic()
            try:
                body = {"model": model, "prompt": PROMPT, "max_tokens": max_tokens}
                r = await client.post("/v1/completions", json=body)
                ok = r.status_code == 200
                if not ok and len(errors) < 3:
                    errors.append(f"{r.status_code} {r.text[:200]}")
            except httpx.HTTPError as e:
                ok = False
                if len(errors) < 3:
                    errors.append(repr(e))
            results.append((phase, sent - start, time.monotonic() - sent if ok else None))

        tasks = []
        phase_start = 0.0
        for k, (rate, seconds) in enumerate(phases):
            t = phase_start
            while rate > 0:
                t += rng.exponential(1.0 / rate)
                if t >= phase_start + seconds:
                    break
                await asyncio.sleep(max(0.0, start + t - time.monotonic()))
                tasks.append(asyncio.create_task(one(k)))
            phase_start += seconds
            await asyncio.sleep(max(0.0, start + phase_start - time.monotonic()))
        await asyncio.gather(*tasks)
    for line in errors:
        print(f"failed request: {line}")
    return results


def report(results: list[tuple[int, float, float | None]], phases: list[tuple[float, float]], out: Path) -> None:
    """Per phase requests and latency; the rounds of the run log; the server's traffic lines."""
    print("| phase | rate (req/s) | s | sent | answered | mean latency (s) | p95 latency (s) |")
    print("|---|---|---|---|---|---|---|")
    for k, (rate, seconds) in enumerate(phases):
        lat = [x for p, _, x in results if p == k and x is not None]
        sent = sum(p == k for p, _, _ in results)
        mean = f"{np.mean(lat):.2f}" if lat else "-"
        p95 = f"{np.percentile(lat, 95):.2f}" if lat else "-"
        print(f"| {k} | {rate:g} | {seconds:g} | {sent} | {len(lat)} | {mean} | {p95} |")
    print("\nrounds (run log):")
    log = out / "rise.jsonl"
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            if d.get("type") == "round":
                print(
                    f"  round {d['round']:3d} {d.get('role', ''):9} batch {d['batch_size']:3d} "
                    f"req {d['requests']:3d} keeps_up {d.get('keeps_up')!s:5} mean latency {d['mean_latency_s']:.2f} s "
                    f"batch {d.get('mean_batch_s', float('nan')):.2f} s {d.get('note') or ''}"
                )
    print("\nserver traffic lines (s since the load began):")
    for line in (out / "server.log").read_text(encoding="utf-8").splitlines():
        if any(word in line for word in TRAFFIC_WORDS):
            print("  " + line[:220])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for rise.jsonl and server.log")
    parser.add_argument("--phases", default="4:40,0:10,4:30,16:90", help="RATE:SECONDS,... (rate 0: quiet)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("serve_args", nargs=argparse.REMAINDER, help="-- then the arguments of edpilot serve")
    args = parser.parse_args()
    phases = [(float(r), float(s)) for r, s in (p.split(":") for p in args.phases.split(","))]
    args.output.mkdir(parents=True, exist_ok=True)
    serve_args = [a for a in args.serve_args if a != "--"] + ["--output", str(args.output / "rise.jsonl")]
    t0: list[float] = []
    proc, url = start(serve_args, args.output / "server.log", t0)
    t0.append(time.monotonic())
    try:
        results = asyncio.run(load(url, phases, max_tokens=args.max_tokens, seed=args.seed))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    report(results, phases, args.output)


if __name__ == "__main__":
    main()
