"""A gateway under concurrent arrivals, in front of a CPU-bound upstream with parallel slots: does giving way cost?

    python benchmarks/gateway_concurrent.py [--rounds 6] [--rate 3] [--burst 12] [--max-tokens 32]

The upstream is `edpilot serve --engine llamacpp:gemma-3-270m --threads 2 --batching continuous --batch 4` (Gemma 3
270M on CPU, four sequences at once: its threads fill the cores while any request runs); in front of it, two
gateways (`--engine openai:…`, 4 slots), one with `--yield-cpu` (the default) and one with `--no-yield-cpu`. Each
round sends a burst of `--burst` streamed requests down each path in turn (rotating order), arriving as a Poisson
stream of `--rate` per second, each on its own thread with the openai client. Per path: TTFT (request to the first
chunk with text) and latency (to the end of the stream), p50 and p95 over every request, client wall ms. Needs the
`[gemma]` and `[llamacpp]` extras.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

import numpy as np
import openai
from gateway_light import start  # starts a process and reads its output on (the same as the other gateway benchmarks)

PROMPT = "Write a short story about a lighthouse keeper."


def serve(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """`edpilot serve ARGS --port 0`, and the URL it prints when it listens (its output read on, so it never blocks)."""
    return start([sys.executable, "-m", "edpilot", "serve", "--port", "0", *args], r"serving on (http://\S+)")


def one(client: openai.OpenAI, max_tokens: int, ttft_ms: list[float], latency_ms: list[float]) -> None:
    start_s, ttft_s = time.monotonic(), None
    for chunk in client.completions.create(model="g", prompt=PROMPT, max_tokens=max_tokens, stream=True, temperature=0):
        if ttft_s is None and chunk.choices and chunk.choices[0].text:
            ttft_s = time.monotonic() - start_s
    latency_ms.append((time.monotonic() - start_s) * 1000)
    if ttft_s is not None:
        ttft_ms.append(ttft_s * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--rate", type=float, default=3.0, help="arrivals per second within a burst")
    parser.add_argument("--burst", type=int, default=12, help="requests per path per round")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    if args.rounds < 1 or args.burst < 1 or not args.rate > 0 or args.max_tokens < 1:
        parser.error("--rounds, --burst and --max-tokens must be >= 1 and --rate > 0")
    model = ["--device", "cpu", "--model-name", "g"]
    upstream, upstream_url = serve([*model, "--engine", "llamacpp:gemma-3-270m", "--threads", "2",
                                    "--batching", "continuous", "--batch", "4"])  # fmt: skip
    gateway = [*model, "--engine", f"openai:{upstream_url}", "--batch", "4"]
    yielding, yielding_url = serve([*gateway, "--yield-cpu"])
    plain, plain_url = serve([*gateway, "--no-yield-cpu"])
    urls = {"direct": upstream_url, "gateway --yield-cpu": yielding_url, "gateway --no-yield-cpu": plain_url}
    clients = {
        name: openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=300) for name, url in urls.items()
    }
    ttft: dict[str, list[float]] = {name: [] for name in urls}
    latency: dict[str, list[float]] = {name: [] for name in urls}
    rng = np.random.default_rng(0)
    names = list(urls)
    try:
        for i in range(args.rounds):
            gaps_s = rng.exponential(1 / args.rate, args.burst)  # the same arrivals for every path of the round
            for name in names[i % len(names) :] + names[: i % len(names)]:
                threads = []
                for gap_s in gaps_s:
                    time.sleep(gap_s)
                    out = (ttft[name], latency[name])
                    thread = threading.Thread(target=one, args=(clients[name], args.max_tokens, *out))
                    thread.start()
                    threads.append(thread)
                for thread in threads:
                    thread.join()
            print(f"round {i + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for proc in (yielding, plain, upstream):
            proc.terminate()
            proc.wait()
    print(
        f"{args.rounds} rounds of {args.burst} streamed requests a path, Poisson {args.rate:g}/s, "
        f"{args.max_tokens} tokens"
    )
    print("| path | TTFT p50 (ms) | TTFT p95 (ms) | latency p50 (ms) | latency p95 (ms) | requests |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        t, lat = np.asarray(ttft[name]), np.asarray(latency[name])
        print(f"| {name} | {np.median(t):.0f} | {np.percentile(t, 95):.0f} | {np.median(lat):.0f} | "
              f"{np.percentile(lat, 95):.0f} | {lat.size} |")  # fmt: skip


if __name__ == "__main__":
    main()
