"""What `edpilot serve --engine openai:…` costs in front of llama-cpp-python's server (Gemma 3 270M, CPU).

    python benchmarks/gateway_stream.py [--rounds 20] [--max-tokens 32] [--threads 2]

Starts llama-cpp-python's OpenAI server on a loopback port with the packaged Gemma 3 270M Q4_K_M GGUF
(`--interrupt_requests False`) and two gateways in front of it: `edpilot serve --engine openai:…` with static
batching (batch 1) and with continuous batching (1 slot). Each round sends one streamed request down each path,
one at a time, in a rotating order, so that the load of a shared machine falls on all three alike. The client
measures on the wall clock: latency (request to the last chunk), TTFT (request to the first chunk with text).
Throughput is requests ÷ the time they took (one request at a time). Needs the `[gemma]` extra and
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


def measure(paths: dict[str, tuple[str, str]], *, rounds: int, max_tokens: int) -> dict[str, dict[str, float]]:
    """Each round sends one streamed request down every path, one after another, in a rotating order."""
    clients = {
        name: openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
        for name, (url, _) in paths.items()
    }
    names = list(paths)
    for name in names:
        one(clients[name], paths[name][1], 4)  # warm the connection and the model
    results: dict[str, list[tuple[float, float | None]]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            results[name].append(one(clients[name], paths[name][1], max_tokens))
    out = {}
    for name, rows in results.items():
        lat = np.array([r[0] for r in rows])
        ttft = np.array([r[1] for r in rows if r[1] is not None])
        out[name] = {
            "throughput": len(lat) / lat.sum(),
            "max": float(lat.max()),
            "p50": float(np.percentile(lat, 50)),
            "p95": float(np.percentile(lat, 95)),
            "ttft50": float(np.percentile(ttft, 50)),
            "ttft95": float(np.percentile(ttft, 95)),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    upstream, url = start_upstream(args.threads)
    procs = [upstream]
    try:
        model = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
        paths = {"direct": (url, model)}
        for batching in ("static", "continuous"):
            proc, gateway = start_gateway(url, batching, 1)
            procs.append(proc)
            paths[f"gateway {batching}"] = (gateway, "gemma")
        rows = measure(paths, rounds=args.rounds, max_tokens=args.max_tokens)
        base = rows["direct"]
        print(f"{args.rounds} rounds, one request at a time, {args.max_tokens} tokens, {args.threads} threads")
        print(
            "| path | req/s | vs direct | p50 latency (s) | p50 vs direct (ms) | p95 latency (s) | p50 TTFT (ms) |"
            " p50 TTFT vs direct (ms) | p95 TTFT (ms) | slowest (s) |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, r in rows.items():
            print(
                f"| {name} | {r['throughput']:.3f} | {r['throughput'] / base['throughput'] - 1:+.1%} | {r['p50']:.3f}"
                f" | {1000 * (r['p50'] - base['p50']):+.0f} | {r['p95']:.3f} | {1000 * r['ttft50']:.0f}"
                f" | {1000 * (r['ttft50'] - base['ttft50']):+.0f} | {1000 * r['ttft95']:.0f} | {r['max']:.2f} |"
            )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    main()
