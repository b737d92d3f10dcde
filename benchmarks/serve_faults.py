"""Abuse of `edpilot serve --engine sim` over loopback: random paths against /metrics, and slow clients.

    python benchmarks/serve_faults.py flood [--paths 40000]
    python benchmarks/serve_faults.py slowloris [--clients 1100] [--nofile 1024] [--seconds 35]

`flood` sends GETs to random paths (with --api-key, so before any auth) and reports the size of /metrics and
the time of a scrape before and after (best of 3). `slowloris` starts the server at `ulimit -n NOFILE`, opens
CLIENTS connections that each send half a request header and one more header line every 2 s, and meanwhile
asks a real completion once a second (5 s timeout); it reports how many real requests were answered, how many
slow clients the server cut, and what the server wrote to stderr (bytes, lines, tracebacks, "Too many open
files"). Both run against whatever `edpilot` is on PYTHONPATH, so the same command measures before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import resource
import string
import subprocess
import sys
import threading
import time

import httpx

MODEL = "llama-3.2-1b"
SERVE = ["--device", "sim", "--freq", "816", "--batch", "1", "--max-wait-s", "0", "--sim-speed", "50"]


class Server:
    """`edpilot serve ARGS --port 0` with its stderr counted as it comes."""

    def __init__(self, args: list[str], *, nofile: int | None = None) -> None:
        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edpilot", "serve", "--port", "0", *args], stderr=subprocess.PIPE, preexec_fn=limit
        )
        self.url = ""
        self.bytes = self.lines = self.tracebacks = self.emfile = 0
        self.head: list[str] = []
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(ready,), daemon=True).start()
        ready.wait(120)
        if not self.url:
            raise SystemExit("the server did not start:\n" + "".join(self.head))

    def _pump(self, ready: threading.Event) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.bytes += len(raw)
            self.lines += 1
            self.tracebacks += "Traceback" in line
            self.emfile += "Too many open files" in line
            if len(self.head) < 20:
                self.head.append(line)
            match = re.search(r"serving on (http://\S+)", line)
            if match and not self.url:
                self.url = match.group(1)
                ready.set()
        ready.set()

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(120)
        time.sleep(0.2)  # let the pump read the last lines
        return code


def scrape(url: str, headers: dict[str, str]) -> tuple[int, float]:
    """Size of /metrics (bytes) and the best of 3 scrape times (s)."""
    times, size = [], 0
    for _ in range(3):
        start_s = time.perf_counter()
        size = len(httpx.get(url + "/metrics", headers=headers, timeout=120).content)
        times.append(time.perf_counter() - start_s)
    return size, min(times)


async def random_gets(url: str, n: int) -> int:
    """GET n random paths, 32 at a time; returns how many failed at the transport (a keep-alive race, say)."""
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32), timeout=60) as client:

        async def one() -> int:
            async with limit:
                try:
                    await client.get(f"{url}/{''.join(random.choices(string.ascii_lowercase, k=12))}")
                except httpx.TransportError:
                    return 1
                return 0

        return sum(await asyncio.gather(*(one() for _ in range(n))))


def flood(paths: int) -> None:
    server = Server([*SERVE, "--api-key", "k"])
    auth = {"Authorization": "Bearer k"}
    size, scrape_s = scrape(server.url, auth)
    print(f"before: /metrics {size} B, scrape {scrape_s * 1000:.1f} ms")
    start_s = time.perf_counter()
    failed = asyncio.run(random_gets(server.url, paths))
    print(f"{paths} GETs to random paths in {time.perf_counter() - start_s:.0f} s ({failed} failed to connect)")
    size, scrape_s = scrape(server.url, auth)
    print(f"after:  /metrics {size} B, scrape {scrape_s * 1000:.1f} ms")
    server.stop()


async def slow_client(host: str, port: int, stop: asyncio.Event) -> bool:
    """Half a header, then a header line every 2 s; True when the server cut the connection."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        while not stop.is_set():
            await asyncio.sleep(2)
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
    except OSError:
        return True
    writer.close()
    return False


async def real_client(url: str, stop: asyncio.Event, out: list[tuple[int | str, float]]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            start_s = time.monotonic()
            body = {"model": MODEL, "prompt": "hi", "max_tokens": 2}
            try:
                status: int | str = (await client.post(url + "/v1/completions", json=body)).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            out.append((status, time.monotonic() - start_s))
            await asyncio.sleep(1)


def slowloris(clients: int, nofile: int, seconds: float) -> None:
    server = Server(SERVE, nofile=nofile)
    host, port = server.url.removeprefix("http://").split(":")

    async def run() -> tuple[list[tuple[int | str, float]], int]:
        stop, answers = asyncio.Event(), []
        slow = [asyncio.create_task(slow_client(host, int(port), stop)) for _ in range(clients)]
        await asyncio.sleep(1)
        real = asyncio.create_task(real_client(server.url, stop, answers))
        await asyncio.sleep(seconds)
        stop.set()
        cut = sum(await asyncio.gather(*slow))
        await real
        return answers, cut

    answers, cut = asyncio.run(run())
    code = server.stop()
    ok = [s for status, s in answers if status == 200]
    print(
        f"{clients} slow clients at ulimit -n {nofile} for {seconds:g} s: real requests answered {len(ok)}/"
        f"{len(answers)} (slowest answered {max(ok, default=float('nan')):.3f} s); slow clients cut {cut}; "
        f"server stderr {server.bytes} B in {server.lines} lines, {server.tracebacks} tracebacks, "
        f"{server.emfile} 'Too many open files'; exit {code}"
    )
    print("first lines of stderr:\n" + "".join(server.head[:8]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("flood").add_argument("--paths", type=int, default=40_000)
    loris = sub.add_parser("slowloris")
    loris.add_argument("--clients", type=int, default=1100)
    loris.add_argument("--nofile", type=int, default=1024)
    loris.add_argument("--seconds", type=float, default=35.0)
    args = parser.parse_args()
    if args.what == "flood":
        flood(args.paths)
    else:
        slowloris(args.clients, args.nofile, args.seconds)


if __name__ == "__main__":
    main()
