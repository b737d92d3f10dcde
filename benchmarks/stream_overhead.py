"""The server's own CPU per streamed chunk when many streams run at once: `edpilot serve --engine sim`, continuous.

    python benchmarks/stream_overhead.py [--streams 8] [--speed 1] [--seconds 8] [--repeats 3] [--max-tokens 64]
        [--server NAME=SRC ...]

`--streams` clients each stream one request after another (64 tokens) from `edpilot serve --device sim
--batching continuous --batch STREAMS` at 930.75 MHz, so every decode step hands a piece of text to each of
`--streams` streams at once (the shape of an hf engine's steps on a GPU: one step, many chunks). The sim engine
sleeps each step's simulated time (÷ `--speed`), so what the server's Python costs beyond it shows as CPU per
chunk and as fewer chunks a second. One server per `--server NAME=SRC` (the source tree put on PYTHONPATH;
default: this checkout's `src`), measured in turn, `--repeats` times in alternating order. Per server: chunks a
second, requests, and the server's CPU (user + system from /proc) per request and per chunk.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import httpx
from gateway_light import start
from gateway_stream import cpu_s, stop

HERE = Path(__file__).resolve().parent
FREQ_MHZ = "930.75"


def stream(url: str, max_tokens: int) -> int:
    """One streamed request; the number of text chunks it got."""
    body = {"model": "llama-3.2-1b", "prompt": "one two three", "max_tokens": max_tokens, "stream": True}
    chunks = 0
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=120) as resp:
        for line in resp.iter_lines():
            chunks += line.startswith("data: {")
    return chunks


def load(url: str, *, streams: int, seconds: float, max_tokens: int) -> tuple[int, int, float]:
    """`streams` clients streaming for `seconds`: (chunks, requests, wall seconds)."""
    counts: list[tuple[int, int]] = []
    end_s = time.monotonic() + seconds

    def client() -> None:
        chunks = requests = 0
        while time.monotonic() < end_s:
            chunks += stream(url, max_tokens)
            requests += 1
        counts.append((chunks, requests))

    threads = [threading.Thread(target=client) for _ in range(streams)]
    start_s = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(c for c, _ in counts), sum(r for _, r in counts), time.monotonic() - start_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--speed", type=float, default=1.0, help="--sim-speed of the servers")
    parser.add_argument("--seconds", type=float, default=8.0, help="per server and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--server", action="append", default=[], metavar="NAME=SRC")
    args = parser.parse_args()
    sources = dict(s.split("=", 1) for s in args.server) or {"current": str(HERE.parent / "src")}
    servers: dict[str, tuple[object, str, int]] = {}
    try:
        for name, src in sources.items():
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(Path(d).resolve()) for d in src.split(os.pathsep))}
            proc, url = start(
                [sys.executable, "-m", "edpilot", "serve", "--device", "sim", "--freq", FREQ_MHZ, "--batch",
                 str(args.streams), "--batching", "continuous", "--sim-speed", f"{args.speed:g}", "--port", "0"],
                r"serving on (http://\S+)", env,
            )  # fmt: skip
            servers[name] = (proc, url, proc.pid)
        for _, url, _ in servers.values():
            load(url, streams=args.streams, seconds=2.0, max_tokens=args.max_tokens)  # past one-time costs
        totals = {name: [0, 0, 0.0, 0.0] for name in servers}
        load_before = os.getloadavg()[0]
        for repeat in range(args.repeats):
            order = list(servers) if repeat % 2 == 0 else list(servers)[::-1]
            for name in order:
                _, url, pid = servers[name]
                before_s = cpu_s(pid)
                chunks, requests, wall_s = load(
                    url, streams=args.streams, seconds=args.seconds, max_tokens=args.max_tokens
                )
                total = totals[name]
                total[0] += chunks
                total[1] += requests
                total[2] += wall_s
                total[3] += cpu_s(pid) - before_s
        load_after = os.getloadavg()[0]
        print(
            f"{args.streams} streams of {args.max_tokens} tokens, sim speed {args.speed:g}, {args.repeats} × "
            f"{args.seconds:g} s per server; load average {load_before:.1f} before, {load_after:.1f} after"
        )
        print("| server | chunks/s | requests | CPU (ms/req) | CPU (µs/chunk) |\n| --- | --- | --- | --- | --- |")
        for name, (chunks, requests, wall_s, cpu) in totals.items():
            print(f"| {name} | {chunks / wall_s:.0f} | {requests} | {1000 * cpu / requests:.2f} | "
                  f"{1e6 * cpu / chunks:.0f} |")  # fmt: skip
    finally:
        stop([proc for proc, _, _ in servers.values()])  # type: ignore[misc]


if __name__ == "__main__":
    main()
