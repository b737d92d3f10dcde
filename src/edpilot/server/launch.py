"""Assemble and run the server: backends paced for serving, the model's context, uvicorn with a graceful stop.

On SIGTERM/SIGINT/SIGHUP the queued requests are answered with an error at once (before uvicorn waits for
open connections), the running batch finishes, the session writes its summary; the caller's
`hardware.guard.guarded` restores the device afterwards, also when a second signal forces the exit.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import uvicorn

from edpilot.architectures import ARCHITECTURES
from edpilot.backends import Backends
from edpilot.engine.base import SequenceEngine
from edpilot.engine.hf import HfEngine
from edpilot.errors import ConfigError
from edpilot.objective import EnergyScope
from edpilot.run import MAX_BUDGET, MAX_OUTPUT_TOKENS, MAX_PROMPT_TOKENS
from edpilot.server.app import create_app
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
    batching: str = "static"

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


class _Server(uvicorn.Server):
    """uvicorn that drains the batcher as soon as a stop signal arrives and reports where it listens."""

    def __init__(
        self, config: uvicorn.Config, *, live: LiveBatcher | LiveContinuous, on_ready: Callable[[str], None]
    ) -> None:
        super().__init__(config)
        self.live, self.on_ready = live, on_ready

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.live.drain_threadsafe()
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self.on_ready(f"http://{host}:{port}")


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
    metrics = ServerMetrics()
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
    model_id = settings.model_name or str(backends.engine.describe().get("model") or model)
    service = Service(live, model_id, context, count, metrics, settings.api_key, on_stop=driver.finish)
    config = uvicorn.Config(
        create_app(service), host=settings.host, port=settings.port, log_level="warning", access_log=False
    )
    server = _Server(config, live=live, on_ready=on_ready)
    previous = signal.signal(signal.SIGHUP, server.handle_exit)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGHUP, previous)
