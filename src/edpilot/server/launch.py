"""Assemble and run the server: backends paced for serving, the model's context, uvicorn with a graceful stop.

On SIGTERM/SIGINT/SIGHUP the queued requests are answered with an error at once (before uvicorn waits for
open connections), the running batch finishes, the session writes its summary, and the signal is raised again
once the event loop is gone, so the caller's `hardware.guard.guarded` restores the device and the process exits
128 + the signal (130, 143, 129). A second signal while stopping only says so: the running batch still
finishes. When the batch loop fails (a clock write that raises, a run log on a full disk) the server stops the
same way and `run_server` raises the cause as one EdpilotError. Connections are capped and must deliver each
request in time (`connections`); running out of file descriptors is one line a minute, not a traceback each.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import resource
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from edpilot.architectures import ARCHITECTURES
from edpilot.backends import Backends
from edpilot.engine.base import Gateway, SequenceEngine
from edpilot.engine.hf import HfEngine
from edpilot.errors import ConfigError, EdpilotError
from edpilot.objective import EnergyScope
from edpilot.run import MAX_BUDGET, MAX_OUTPUT_TOKENS, MAX_PROMPT_TOKENS
from edpilot.server.app import create_app
from edpilot.server.board import BoardMetrics
from edpilot.server.connections import SHED_LOG_INTERVAL_S, ConnectionLimits, limited_protocol
from edpilot.server.cpu_yield import CpuYield
from edpilot.server.driver import ServingDriver
from edpilot.server.estimator import TrafficEstimator
from edpilot.server.metrics import ServerMetrics
from edpilot.server.service import Service
from edpilot.server.stepper import LiveContinuous
from edpilot.server.worker import LiveBatcher
from edpilot.sim import SimEngine
from edpilot.tuner import TuningSession
from edpilot.workload.prompts import estimate_tokens

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FD_HEADROOM = 128  # descriptors kept for the server's own files (sysfs, the run log, the engine) under the cap
ACCEPT_BACKLOG = 64  # asyncio accepts up to this many at once before the cap sees them: half the headroom
MAX_CONNECTIONS = 2048  # the default cap, lowered to fit the descriptor limit
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this long (uvicorn's default, made explicit)
TICK_S = 1.0  # uvicorn's housekeeping (the Date header, the stop check) runs this often; a stop wakes it at once


@dataclass(frozen=True)
class ServeSettings:
    """Where and how to serve: bind address, access, queue, batching and tuning limits."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    insecure: bool = False
    max_queue: int = 1024
    max_wait_s: float | None = 5.0
    sim_speed: float = 1.0
    budget: int = 30
    model_name: str | None = None
    max_connections: int | None = None  # None: MAX_CONNECTIONS, or fewer to fit the descriptor limit
    read_timeout_s: float = 30.0
    batching: str = "static"
    yield_cpu: bool = True  # a gateway in front of a server on this host relays at idle priority (cpu_yield)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535, got {self.port}")
        if not 1 <= self.max_queue <= 1_000_000:
            raise ConfigError(f"--max-queue must be between 1 and 1000000, got {self.max_queue}")
        if self.max_wait_s is not None and not (math.isfinite(self.max_wait_s) and self.max_wait_s >= 0):
            raise ConfigError(f"--max-wait-s must be a finite number of seconds >= 0, got {self.max_wait_s}")
        if not (math.isfinite(self.sim_speed) and 0 < self.sim_speed <= 1e6):
            raise ConfigError(f"--sim-speed must be a number > 0 (at most 1e6), got {self.sim_speed}")
        if not 1 <= self.budget <= MAX_BUDGET:
            raise ConfigError(f"--budget must be between 1 and {MAX_BUDGET}, got {self.budget}")
        if self.max_connections is not None and not 1 <= self.max_connections <= 1_000_000:
            raise ConfigError(f"--max-connections must be between 1 and 1000000, got {self.max_connections}")
        if not (math.isfinite(self.read_timeout_s) and 0 < self.read_timeout_s <= 3600):
            raise ConfigError(
                f"--read-timeout-s must be a number of seconds > 0 (at most 3600), got {self.read_timeout_s}"
            )
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("--api-key is empty")
        if not is_loopback(self.host) and self.api_key is None and not self.insecure:
            raise ConfigError(
                f"refusing to serve on {self.host} without --api-key: anyone who can reach it could use it; "
                "give --api-key KEY, or --insecure if the network is yours"
            )


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _on_this_host(url: str) -> bool:
    return is_loopback(urlsplit(url).hostname or "")


def serving_sim_speed(device: str, sim_speed: float) -> float | None:
    """The pace `open_backends` gets: the simulated board serves on the wall clock (× `sim_speed`); a real
    device runs in real time, and `--sim-speed` other than 1 on it is refused."""
    if device.partition(":")[0] == "sim":
        return sim_speed
    if sim_speed != 1.0:
        raise ConfigError("--sim-speed only applies to --device sim (a real device runs in real time)")
    return None


def model_limits(backends: Backends, model: str) -> tuple[int, Callable[[str], int]]:
    """The model's context (tokens) and how to count a prompt's tokens."""
    engine = backends.engine
    if isinstance(engine, HfEngine):
        tokenizer = engine.tokenizer
        context = int(getattr(engine.model.config, "max_position_embeddings", MAX_PROMPT_TOKENS))
        return context, lambda text: len(tokenizer(text)["input_ids"])
    if isinstance(engine, SimEngine) and model in ARCHITECTURES:
        return ARCHITECTURES[model].max_position_embeddings, estimate_tokens
    return MAX_PROMPT_TOKENS + MAX_OUTPUT_TOKENS, estimate_tokens  # a gateway: its server checks its own context


def connection_cap(requested: int | None) -> int:
    """The connection cap: `requested`, or the default; lowered (with a warning) to leave FD_HEADROOM descriptors.

    The soft descriptor limit is raised to the hard one first, as servers do.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    fits = MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else max(1, soft - FD_HEADROOM)
    cap = requested if requested is not None else MAX_CONNECTIONS
    if cap > fits:
        if requested is not None:
            log.warning(
                "--max-connections %d lowered to %d to fit the descriptor limit (ulimit -n %d)", cap, fits, soft
            )
        cap = fits
    return cap


class _Server(uvicorn.Server):
    """uvicorn that drains the batcher as soon as a stop signal arrives, stops when the batch loop fails, says
    where it listens, and leaves raising the stop signal to after the event loop (no traceback from inside it).

    Its housekeeping wakes once a second, not ten times, and at once on a stop: an idle server's wake-ups are CPU
    time taken from the model it fronts (and energy on a board)."""

    def __init__(
        self, config: uvicorn.Config, *, live: LiveBatcher | LiveContinuous, on_ready: Callable[[str], None]
    ) -> None:
        super().__init__(config)
        self.live, self.on_ready = live, on_ready
        self.stop_signal: int | None = None
        self._resource_errors = 0
        self._resource_logged_s: float | None = None
        self._woken: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        live.on_failure = self._stop

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stop_signal is not None:
            log.warning(
                "already stopping (%s): the running batch finishes first; SIGKILL abandons it, then `edpilot restore`",
                signal.Signals(sig).name,
            )
            return
        self.stop_signal = sig
        self.live.drain_threadsafe()
        self._stop()

    def _stop(self) -> None:
        """Stop serving (from any thread): the housekeeping loop sees it at once."""
        self.should_exit = True
        if self._woken is not None:
            loop, woken = self._woken
            loop.call_soon_threadsafe(woken.set)

    async def main_loop(self) -> None:
        woken = asyncio.Event()
        self._woken = asyncio.get_running_loop(), woken
        ticks = 0
        while not await self.on_tick(ticks):
            ticks += 10  # uvicorn counts tenths of a second: the Date header is renewed every 10th
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(woken.wait(), TICK_S)

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        asyncio.get_running_loop().set_exception_handler(self._loop_error)
        await super().startup(sockets)
        if self.started and self.servers and not self.should_exit:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self.on_ready(f"http://{host}:{port}")

    def descriptors(self) -> list[int]:
        """The file descriptors of the listening sockets and of every open connection (on the loop)."""
        fds = [sock.fileno() for server in self.servers for sock in server.sockets]
        for connection in self.server_state.connections:
            transport = getattr(connection, "transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None:
                fds.append(sock.fileno())
        return [fd for fd in fds if fd >= 0]

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Out of descriptors (or memory) while accepting: one line a minute, not a traceback each time."""
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and "out of system resource" in str(context.get("message", ""))):
            loop.default_exception_handler(context)
            return
        self._resource_errors += 1
        now_s = loop.time()
        if self._resource_logged_s is None or now_s - self._resource_logged_s >= SHED_LOG_INTERVAL_S:
            self._resource_logged_s = now_s
            log.warning(
                "cannot accept connections: %s (%d times so far); lower --max-connections or raise ulimit -n",
                exc.strerror or exc,
                self._resource_errors,
            )


def run_server(
    backends: Backends,
    session: TuningSession,
    *,
    settings: ServeSettings,
    online: bool,
    energy_scope: EnergyScope,
    model: str,
    on_ready: Callable[[str], None],
) -> None:
    """Serve until a stop signal; returns after the graceful shutdown (the caller restores the device)."""
    metrics = ServerMetrics(has_meter=backends.device.capabilities.has_meter)
    board = BoardMetrics(backends.device, registry=metrics.registry)
    continuous = settings.batching == "continuous"
    driver = ServingDriver(
        backends,
        session,
        metrics=metrics,
        online=online,
        budget=settings.budget,
        energy_scope=energy_scope,
        continuous=continuous,
    )
    estimator = TrafficEstimator(requests_per_round=session.traffic.requests_per_round)
    live: LiveBatcher | LiveContinuous
    if continuous:
        if not isinstance(backends.engine, SequenceEngine):
            raise ConfigError(
                f"the {backends.engine.name} engine has no step-level interface; "
                "--batching continuous needs the sim, openai or llamacpp engine (or use --batching static)"
            )
        live = LiveContinuous(
            driver,
            backends.engine,
            clock=backends.clock,
            wall_per_clock_s=1.0 / settings.sim_speed,
            max_queue=settings.max_queue,
            estimator=estimator,
            metrics=metrics,
        )
    else:
        live = LiveBatcher(
            driver,
            clock=backends.clock,
            wall_per_clock_s=1.0 / settings.sim_speed,
            max_wait_s=settings.max_wait_s,
            max_queue=settings.max_queue,
            estimator=estimator,
            metrics=metrics,
        )
    context, count = model_limits(backends, model)
    gateway = backends.engine if isinstance(backends.engine, Gateway) else None
    yielding = settings.yield_cpu and gateway is not None and _on_this_host(gateway.api_url)
    cpu_yield = CpuYield() if yielding else None
    model_id = settings.model_name or str(backends.engine.describe().get("model") or model)
    service = Service(
        live,
        model_id,
        context,
        count,
        metrics,
        settings.api_key,
        on_stop=driver.finish,
        gateway=gateway,
        cpu_yield=cpu_yield,
    )
    limits = ConnectionLimits(
        max_connections=connection_cap(settings.max_connections), read_timeout_s=settings.read_timeout_s
    )
    config = uvicorn.Config(
        create_app(service),
        host=settings.host,
        port=settings.port,
        http=limited_protocol(limits),
        backlog=ACCEPT_BACKLOG,
        limit_concurrency=limits.max_connections + 1,  # our cap closes connections first; this only backs it up
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level="warning",
        access_log=False,
    )
    server = _Server(config, live=live, on_ready=on_ready)
    if cpu_yield is not None:
        cpu_yield.sockets = server.descriptors
    try:
        server.run()
    finally:
        board.close()
    if live.failure is not None:
        raise EdpilotError(f"the server stopped after a failure: {live.failure}")
    if server.stop_signal is not None:
        signal.raise_signal(server.stop_signal)  # the caller's handler (hardware.guard) turns it into the exit
