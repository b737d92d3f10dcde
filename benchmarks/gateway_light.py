"""The gateway's own cost per streamed request, in front of a light upstream that costs next to nothing.

    python benchmarks/gateway_light.py [--rounds 60] [--max-tokens 32] [--interval-ms 10] [--warmup 20]
        [--concurrency 1] [--gateway NAME=SRC ...]

The upstream is a small asyncio HTTP/1.1 server (its own process) that answers `/v1/completions` with streamed
chunks shaped as llama-cpp-python's (`data: {...}\\r\\n\\r\\n`, one token every `--interval-ms`, then the finish
reason, the usage with `stream_options.include_usage`, and `[DONE]`), so the gateway's costs are not hidden behind
a model's. In front of it run `edpilot serve --engine openai:…` gateways (static batch 1 and continuous 1 slot),
one pair per `--gateway NAME=SRC` (the source tree put on PYTHONPATH; default: this checkout's `src`), so two
versions can be compared on the same machine, interleaved. Each round sends `--concurrency` streamed requests at
once down every path (the openai client, as users do; the gateways get as many slots), one path at a time, in a
rotating order. Per path: p50 latency and TTFT (wall ms, client side; a round's latency is the median of its
requests'), `paired` (median over rounds of this path's latency less the direct path's in the same round), and
the gateway's CPU time per request (user + system from /proc: what it would take from a model that fills the
cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openai
from gateway_stream import cpu_s, one, stop  # the same client-side timing as the llama-cpp-python benchmark

HERE = Path(__file__).resolve().parent


class _Upstream(asyncio.Protocol):
    """One connection to the stand-in server: parses requests (Content-Length bodies), streams answers."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s, self.buffer = interval_s, b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1)) if b"ength" in head else 0
        if len(rest) < length:
            return
        self.buffer = rest[length:]
        line = head.split(b"\r\n", 1)[0].decode()
        asyncio.ensure_future(self.answer(line, rest[:length]))

    async def answer(self, line: str, body: bytes) -> None:
        assert self.transport is not None
        if line.startswith("GET"):
            data = json.dumps({"object": "list", "data": [{"id": "light", "object": "model"}]}).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                                 % len(data) + data)  # fmt: skip
            return
        request = json.loads(body)
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        created = int(time.time())
        n = int(request.get("max_tokens", 16))

        def event(choice: dict[str, object] | None, usage: dict[str, int] | None = None) -> None:
            obj: dict[str, object] = {"id": "cmpl-light", "object": "text_completion", "created": created,
                                      "model": "light", "choices": [] if choice is None else [choice]}  # fmt: skip
            if usage is not None:
                obj["usage"] = usage
            self.send(f"data: {json.dumps(obj)}\r\n\r\n".encode())

        for i in range(n):
            await asyncio.sleep(self.interval_s)
            event({"text": f" w{i}", "index": 0, "logprobs": None, "finish_reason": None})
        event({"text": "", "index": 0, "logprobs": None, "finish_reason": "length"})
        if (request.get("stream_options") or {}).get("include_usage"):
            event(None, {"prompt_tokens": 16, "completion_tokens": n, "total_tokens": 16 + n})
        self.send(b"data: [DONE]\r\n\r\n")
        self.transport.write(b"0\r\n\r\n")

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))


def serve_upstream(port: int, interval_s: float) -> None:
    """Run the stand-in upstream on 127.0.0.1:`port` until killed (prints its URL when listening)."""

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(lambda: _Upstream(interval_s), "127.0.0.1", port)
        print(f"listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def start(args: list[str], pattern: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start a process and return it with the URL it prints (stdout or stderr) when it listens."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(pattern, line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # keep the pipe empty
            return proc, match.group(1)
    raise SystemExit(f"{args[:4]} did not start")


def together(client: openai.OpenAI, model: str, max_tokens: int, concurrency: int) -> list[tuple[float, float | None]]:
    """(latency, TTFT) of `concurrency` streamed requests sent at once."""
    if concurrency == 1:
        return [one(client, model, max_tokens)]
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda _: one(client, model, max_tokens), range(concurrency)))


def run(
    paths: dict[str, tuple[openai.OpenAI, str, int]], *, rounds: int, max_tokens: int, concurrency: int
) -> list[str]:
    """Interleaved rounds over every path; markdown rows of the results."""
    names = list(paths)
    latency: dict[str, list[float]] = {name: [] for name in names}
    ttft: dict[str, list[float]] = {name: [] for name in names}
    cpu = dict.fromkeys(names, 0.0)
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            client, model, pid = paths[name]
            before_s = cpu_s(pid)
            answers = together(client, model, max_tokens, concurrency)
            cpu[name] += cpu_s(pid) - before_s
            latency[name].append(float(np.median([lat_s for lat_s, _ in answers])))
            ttft[name] += [first_s for _, first_s in answers if first_s is not None]
    direct = np.array(latency["direct"])
    lines = [
        "| path | p50 (ms) | vs direct (ms) | paired (ms) | p90 (ms) | TTFT p50 (ms) | CPU (ms/req) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        lat = np.array(latency[name])
        cells = [
            f"{1000 * np.median(lat):.1f}",
            f"{1000 * (np.median(lat) - np.median(direct)):+.1f}",
            f"{1000 * np.median(lat - direct):+.1f}",
            f"{1000 * np.percentile(lat, 90):.1f}",
            f"{1000 * np.median(ttft[name]):.1f}",
            "(upstream)" if name == "direct" else f"{1000 * cpu[name] / (rounds * concurrency):.2f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=20, help="requests down each path before measuring")
    parser.add_argument("--concurrency", type=int, default=1, help="streamed requests at once (and gateway slots)")
    parser.add_argument("--gateway", action="append", default=[], metavar="NAME=SRC")
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream is not None:
        serve_upstream(args.serve_upstream, args.interval_ms / 1000)
        return
    gateways = dict(g.split("=", 1) for g in args.gateway) or {"current": str(HERE.parent / "src")}
    upstream, url = start([sys.executable, __file__, "--serve-upstream", "0", "--interval-ms", str(args.interval_ms)],
                          r"listening on (http://\S+)")  # fmt: skip
    procs = [upstream]
    try:
        urls = {"direct": (url, "light", upstream.pid)}
        for name, src in gateways.items():
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(Path(d).resolve()) for d in src.split(os.pathsep))}
            for batching in ("static", "continuous"):
                proc, gateway = start(
                    [sys.executable, "-m", "edpilot", "serve", "--device", "cpu", "--engine", f"openai:{url}",
                     "--port", "0", "--batching", batching, "--batch", str(args.concurrency), "--max-wait-s", "0.05",
                     "--model-name", "gemma"],
                    r"serving on (http://\S+)", env,
                )  # fmt: skip
                procs.append(proc)
                urls[f"{name} {batching}"] = (gateway, "gemma", proc.pid)
        paths = {
            name: (openai.OpenAI(base_url=f"{u}/v1", api_key="unused", max_retries=0, timeout=60), m, pid)
            for name, (u, m, pid) in urls.items()
        }
        for client, model, _ in paths.values():
            for _ in range(args.warmup):  # past one-time costs: imports, the traffic estimator's first estimate
                one(client, model, 4)
        load = os.getloadavg()[0]
        lines = run(paths, rounds=args.rounds, max_tokens=args.max_tokens, concurrency=args.concurrency)
        print(f"{args.rounds} rounds of {args.concurrency} requests at once, {args.max_tokens} tokens every "
              f"{args.interval_ms:g} ms; load average "
              f"{load:.1f} before, {os.getloadavg()[0]:.1f} after")  # fmt: skip
        print("\n".join(lines))
    finally:
        stop(procs)


if __name__ == "__main__":
    main()
