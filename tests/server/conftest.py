"""Real `edpilot serve` processes on free loopback ports, driven by the official openai client."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

START_TIMEOUT_S = 120.0  # a guard against a hung start, not a measurement


@dataclass
class ServerProcess:
    """A running server: its process, base URL and everything it wrote to stderr."""

    proc: subprocess.Popen[str]
    url: str = ""
    stderr: list[str] = field(default_factory=list)

    def client(self, **kwargs: object) -> openai.OpenAI:
        kwargs.setdefault("api_key", "unused")
        return openai.OpenAI(base_url=f"{self.url}/v1", max_retries=0, timeout=120.0, **kwargs)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=120)

    @property
    def log(self) -> str:
        return "".join(self.stderr)


def start_server(
    *args: str, env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None
) -> ServerProcess:
    """Start `edpilot serve ARGS --port 0` and wait until it prints where it listens."""
    environ = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edpilot", "serve", "--port", "0", *args],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
    )
    server = ServerProcess(proc)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            server.stderr.append(line)
            match = re.search(r"serving on (http://\S+)", line)
            if match and not ready.is_set():
                server.url = match.group(1)
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    ready.wait(START_TIMEOUT_S)
    if not server.url:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the server did not start:\n{server.log}")
    return server


@pytest.fixture
def serve() -> Iterator[object]:
    """`serve(*args)` starts a server; every one started is stopped at the end of the test."""
    started: list[ServerProcess] = []

    def make(
        *args: str, env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None
    ) -> ServerProcess:
        server = start_server(*args, env=env, preexec_fn=preexec_fn)
        started.append(server)
        return server

    yield make
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
