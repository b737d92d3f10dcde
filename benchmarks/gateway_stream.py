"""What `edpilot serve --engine openai:…` costs in front of llama-cpp-python's server (Gemma 3 270M, CPU).

    python benchmarks/gateway_stream.py [--repeats 5] [--rounds 20] [--max-tokens 32] [--threads 2]
        [--gateway NAME=SRC ...] [--relay]

Starts llama-cpp-python's OpenAI server on a loopback port with the packaged Gemma 3 270M Q4_K_M GGUF
(`--interrupt_requests False`) and two gateways in front of it: `edpilot serve --engine openai:…` with static
batching (batch 1) and with continuous batching (1 slot). Each round sends one streamed request down each path, one
at a time, in a rotating order, so that the load of a shared machine falls on all three alike; a repeat is
`--rounds` rounds, and the table gives the median over the repeats and their range (min–max), each difference taken
against the direct path of the same repeat; `paired` is the median, over a repeat's rounds, of a path's latency
less the direct request's of the same round (requests seconds apart share the machine's load). The client measures
on the wall clock: latency (request to the last chunk), TTFT (request to the first chunk with text); throughput is
requests ÷ the time they took (one request at a time). The gateway's CPU time per request (user + system, from
/proc) is what it takes from the upstream on a machine whose cores the upstream fills. Needs the `[gemma]` extra
and `llama-cpp-python[server]`. `--gateway NAME=SRC` (repeatable) runs the gateways of other source trees side by
side with the same rounds, so two versions meet the same load. `--relay` adds a path through a bare TCP relay
(`benchmarks/tcp_relay.py`: bytes forwarded both ways, nothing parsed): the floor of any process in the path.
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


def start_gateway(upstream: str, batching: str, concurrency: int, src: str | None) -> tuple[subprocess.Popen, str]:
    """`edpilot serve` (from the source tree `src`, else the installed one) in front of `upstream`; returns when
    it prints where it listens."""
    args = [sys.executable, "-m", "edpilot", "serve", "--device", "cpu", "--engine", f"openai:{upstream}",
            "--port", "0", "--batching", batching, "--batch", str(concurrency), "--max-wait-s", "0.05",
            "--model-name", "gemma"]  # fmt: skip
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(d) for d in src.split(os.pathsep))
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"serving on (http://\S+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # keep the pipe empty
            return proc, match.group(1)
    raise SystemExit("the gateway did not start")


def start_relay(upstream: str) -> tuple[subprocess.Popen, str]:
    """`benchmarks/tcp_relay.py` in front of `upstream` (bytes relayed both ways, nothing else)."""
    host, port = upstream.removeprefix("http://").rsplit(":", 1)
    relay = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcp_relay.py")
    proc = subprocess.Popen([sys.executable, relay, host, port], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"relaying on (http://\S+)", line)
        if match:
            return proc, match.group(1)
    raise SystemExit("the relay did not start")


def one(client: openai.OpenAI, model: str, max_tokens: int) -> tuple[float, float | None]:
    """(latency, TTFT) of one streamed request, wall seconds."""
    start = time.monotonic()
    ttft = None
    stream = client.completions.create(model=model, prompt=PROMPT, max_tokens=max_tokens, stream=True, temperature=0)
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].text:
            ttft = time.monotonic() - start
    return time.monotonic() - start, ttft


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every process still running; kill what has not exited 30 s later."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


Path = tuple[openai.OpenAI, str, int]  # client, model name, the pid serving it


def measure(paths: dict[str, Path], *, rounds: int, max_tokens: int) -> dict[str, dict[str, float]]:
    """One repeat: each round sends one streamed request down every path, one after another, in a rotating order."""
    names = list(paths)
    rows: dict[str, list[tuple[float, float | None]]] = {name: [] for name in names}
    cpu = dict.fromkeys(names, 0.0)
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            client, model, pid = paths[name]
            before_s = cpu_s(pid)
            rows[name].append(one(client, model, max_tokens))
            cpu[name] += cpu_s(pid) - before_s
    out = {}
    for name, results in rows.items():
        lat = np.array([r[0] for r in results])
        ttft = np.array([r[1] for r in results if r[1] is not None])
        out[name] = {
            "req/s": len(lat) / lat.sum(),
            "p50 (ms)": 1000 * float(np.percentile(lat, 50)),
            "p95 (ms)": 1000 * float(np.percentile(lat, 95)),
            "TTFT p50 (ms)": 1000 * float(np.percentile(ttft, 50)),
            "TTFT p95 (ms)": 1000 * float(np.percentile(ttft, 95)),
            "CPU (ms/req)": 1000 * cpu[name] / rounds,
            "paired (ms)": 1000 * float(np.median(lat - np.array([r[0] for r in rows["direct"]]))),
        }
    return out


def spread(values: list[float], fmt: str) -> str:
    """`median [min–max]` of the repeats."""
    return f"{np.median(values):{fmt}} [{min(values):{fmt}}–{max(values):{fmt}}]"


def table(repeats: list[dict[str, dict[str, float]]]) -> list[str]:
    """Markdown rows: each path's medians over the repeats, and its differences from the direct path."""
    metrics = list(repeats[0]["direct"])
    lines = [
        "| path | req/s | vs direct | p50 (ms) | vs direct | paired (ms) | p95 (ms) | TTFT p50 (ms) | vs direct "
        "| TTFT p95 (ms) | CPU (ms/req) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in repeats[0]:
        col = {m: [r[name][m] for r in repeats] for m in metrics}
        rel = [100 * (r[name]["req/s"] / r["direct"]["req/s"] - 1) for r in repeats]
        dp50 = [r[name]["p50 (ms)"] - r["direct"]["p50 (ms)"] for r in repeats]
        dttft = [r[name]["TTFT p50 (ms)"] - r["direct"]["TTFT p50 (ms)"] for r in repeats]
        cpu = (
            spread(col["CPU (ms/req)"], ".1f")
            if name != "direct"
            else "(the server: " + spread(col["CPU (ms/req)"], ".0f") + ")"
        )
        lines.append(
            f"| {name} | {spread(col['req/s'], '.3f')} | {spread(rel, '+.1f')} % | {spread(col['p50 (ms)'], '.0f')} "
            f"| {spread(dp50, '+.0f')} | {spread(col['paired (ms)'], '+.0f')} | {spread(col['p95 (ms)'], '.0f')} "
            f"| {spread(col['TTFT p50 (ms)'], '.0f')} | {spread(dttft, '+.0f')} "
            f"| {spread(col['TTFT p95 (ms)'], '.0f')} | {cpu} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--gateway", action="append", default=[], metavar="NAME=SRC",
        help="gateways from source tree SRC (PYTHONPATH; several joined by ':'), named NAME; repeat to compare",
    )  # fmt: skip
    parser.add_argument(
        "--relay", action="store_true",
        help="also a bare TCP relay in front of the upstream (tcp_relay.py): what any process in the path costs",
    )  # fmt: skip
    args = parser.parse_args()
    upstream, url = start_upstream(args.threads)
    procs = [upstream]
    try:
        model = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
        urls = {"direct": (url, model, upstream.pid)}
        gateways = dict(g.split("=", 1) for g in args.gateway) or {"gateway": None}
        if args.relay:
            proc, relay = start_relay(url)
            procs.append(proc)
            urls["tcp relay"] = (relay, model, proc.pid)
        for name, src in gateways.items():
            for batching in ("static", "continuous"):
                proc, gateway = start_gateway(url, batching, 1, src)
                procs.append(proc)
                urls[f"{name} {batching}"] = (gateway, "gemma", proc.pid)
        paths = {
            name: (openai.OpenAI(base_url=f"{u}/v1", api_key="unused", max_retries=0, timeout=600), m, pid)
            for name, (u, m, pid) in urls.items()
        }
        for client, name, _ in paths.values():
            one(client, name, 4)  # warm the connection and the model
        repeats = []
        for i in range(args.repeats):
            repeats.append(measure(paths, rounds=args.rounds, max_tokens=args.max_tokens))
            load = os.getloadavg()[0]
            print(f"repeat {i + 1}/{args.repeats} done (load average {load:.1f})", file=sys.stderr, flush=True)
        print(
            f"{args.repeats} repeats of {args.rounds} rounds, one request at a time, {args.max_tokens} tokens, "
            f"{args.threads} threads; median [min–max] over the repeats"
        )
        print("\n".join(table(repeats)))
    finally:
        stop(procs)


if __name__ == "__main__":
    main()
