"""What `edpilot serve --engine openai:…` costs in front of llama-cpp-python's server (Gemma 3 270M, CPU).

    python benchmarks/gateway_stream.py [--requests 20] [--concurrency 1] [--max-tokens 32] [--threads 2]

Starts llama-cpp-python's OpenAI server on a loopback port with the packaged Gemma 3 270M Q4_K_M GGUF, then
serves the same closed-loop load (`--concurrency` clients, each sending its next request when the last one
ended, streamed) three ways: straight to that server, through the gateway with static batching (batch =
concurrency, max wait 50 ms) and through the gateway with continuous batching (slots = concurrency). Each
client measures on the wall clock: latency (request to the last chunk), TTFT (request to the first chunk with
text). Throughput is requests ÷ wall time of the whole load. Needs the `[gemma]` extra and
`llama-cpp-python[server]`.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai

from edpilot.engine.hf_presets import gemma_gguf_path

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_upstream(threads: int) -> tuple[subprocess.Popen, str]:
    """llama-cpp-python's server on a free loopback port; returns when /v1/models answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma_gguf_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_threads", str(threads), "--n_ctx", "2048", "--interrupt_requests", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("llama-cpp-python's server did not start")


def start_gateway(upstream: str, batching: str, concurrency: int) -> tuple[subprocess.Popen, str]:
    """`edpilot serve` in front of `upstream`; returns when it prints where it listens."""
    args = [sys.executable, "-m", "edpilot", "serve", "--device", "cpu", "--engine", f"openai:{upstream}",
            "--port", "0", "--batching", batching, "--batch", str(concurrency), "--max-wait-s", "0.05",
            "--model-name", "gemma"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ)
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"serving on (http://\S+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # keep the pipe empty
            return proc, match.group(1)
    raise SystemExit("the gateway did not start")


def one(client: openai.OpenAI, model: str, max_tokens: int) -> tuple[float, float | None]:
    """(latency, TTFT) of one streamed request, wall seconds."""
    start = time.monotonic()
    ttft = None
    stream = client.completions.create(model=model, prompt=PROMPT, max_tokens=max_tokens, stream=True, temperature=0)
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].text:
            ttft = time.monotonic() - start
    return time.monotonic() - start, ttft


def load(url: str, model: str, *, requests: int, concurrency: int, max_tokens: int) -> dict[str, float]:
    """Closed-loop load: `concurrency` clients share `requests` requests."""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)
    one(client, model, 4)  # warm the connection and the model
    start = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda _: one(client, model, max_tokens), range(requests)))
    wall = time.monotonic() - start
    lat = np.array([r[0] for r in results])
    ttft = np.array([r[1] for r in results if r[1] is not None])
    return {
        "throughput": requests / wall,
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "ttft50": float(np.percentile(ttft, 50)),
        "ttft95": float(np.percentile(ttft, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    upstream, url = start_upstream(args.threads)
    procs = [upstream]
    try:
        model = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
        rows = {"direct": load(url, model, requests=args.requests, concurrency=args.concurrency,
                               max_tokens=args.max_tokens)}  # fmt: skip
        for batching in ("static", "continuous"):
            proc, gw = start_gateway(url, batching, args.concurrency)
            procs.append(proc)
            rows[f"gateway {batching}"] = load(
                gw, "gemma", requests=args.requests, concurrency=args.concurrency, max_tokens=args.max_tokens
            )
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        base = rows["direct"]
        print(f"concurrency {args.concurrency}, {args.requests} requests of {args.max_tokens} tokens, "
              f"{args.threads} threads")  # fmt: skip
        print("| path | req/s | vs direct | p50 latency (s) | p95 latency (s) | p50 TTFT (ms) | p95 TTFT (ms) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, r in rows.items():
            print(
                f"| {name} | {r['throughput']:.3f} | {r['throughput'] / base['throughput'] - 1:+.1%} | {r['p50']:.3f}"
                f" | {r['p95']:.3f} | {1000 * r['ttft50']:.0f} | {1000 * r['ttft95']:.0f} |"
            )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
