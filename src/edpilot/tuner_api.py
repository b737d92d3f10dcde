"""`edpilot.Tuner`: ask/tell tuning from your own serving loop, on the `TuningSession` that `tune` and `serve` drive.

    tuner = edpilot.Tuner(device, arrival_rate_per_s=2.0)       # the traffic is said once, here (or workload=...)
    config = tuner.next_config()                                 # ask: (freq_mhz, batch_size) to serve at
    with tuner.round(config) as rnd:                             # pins the clock, opens the energy window
        rnd.run(engine, batch)                                   # ...or rnd.add_batch(...) for your own engine
    tuner.best()                                                 # the config to hold
    tuner.set_traffic(arrival_rate_per_s=4.0)                    # the traffic changed: re-plan at once

`tuner.record(config, observation)` tells it a window you measured yourself. A round turns its batches into an
`Observation` with the same `runner.summarize` the replay runner and the live server use. Raises ConfigError
(bad settings, a config off the grid), EngineError (a baseline round whose every request failed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from edpilot.backends import profile_table
from edpilot.clock import Clock
from edpilot.engine.base import Completion, DecodeHook, Engine, TokenSink
from edpilot.errors import ConfigError
from edpilot.hardware.base import Device
from edpilot.levels import set_levels
from edpilot.objective import Observation
from edpilot.records import RoundRecord
from edpilot.run import SearchRequest, run_header, session_settings, with_prior
from edpilot.runlog import RunLog
from edpilot.runner import ServedBatch, run_batch, summarize
from edpilot.search import DEFAULT_STRATEGY
from edpilot.serving.phase import PhaseSwitch, phase_switch
from edpilot.serving.traffic import Traffic, TrafficKind
from edpilot.serving.window import EnergyWindow
from edpilot.space import Config, ConfigSpace
from edpilot.tuner import TuneResult, TuningSession
from edpilot.workload import Request, RequestSource


class Tuner:
    """Ask for the next config, serve a round there in your loop, tell what it measured; `best()` is the choice.

    The grid comes from the device (`freqs`/`batches`/`emcs` narrow it, as `--freqs`/`--batches`/`--emcs` do;
    `phase_clocks` adds decode levels as axes of their own, as `--phase-clocks` does). The traffic is
    given once: either `arrival_rate_per_s` (with `arrivals`, default uniform, and mean `prompt_tokens`, default
    128, and `output_tokens`, default 70), or a `workload` whose requests you serve (`tuner.workload`), and it is
    changed with `set_traffic`. `run_log` writes the JSONL run log `edpilot tune` writes (`edpilot report` reads it).
    `model` names the model your engine runs (recorded there); `prior` warm-starts the search from another board's
    run log of that model (`--prior`: same model, board kind and lengths, else ConfigError).
    """

    def __init__(
        self,
        device: Device,
        *,
        arrival_rate_per_s: float | None = None,
        arrivals: TrafficKind | None = None,
        prompt_tokens: float | None = None,
        output_tokens: float | None = None,
        workload: RequestSource | None = None,
        requests_per_round: int = 32,
        objective: str = "edp",
        strategy: str = DEFAULT_STRATEGY,
        energy_scope: str = "total",
        freqs: str | Sequence[float] | None = None,
        batches: str | Sequence[int] | None = None,
        emcs: str | Sequence[float] | None = None,
        phase_clocks: bool = False,
        baseline: Config | None = None,
        slo_p95_s: float | None = None,
        power_cap_w: float | None = None,
        seed: int = 0,
        run_log: str | Path | None = None,
        overwrite: bool = False,
        model: str | None = None,
        prior: str | Path | None = None,
    ) -> None:
        self.device = device
        self.search = SearchRequest(
            freqs=_as_list(freqs),
            batches=_as_list(batches),
            emcs=_as_list(emcs),
            phase_clocks=phase_clocks,
            baseline=None if baseline is None else f"{baseline.freq_mhz},{baseline.batch_size}",
            strategy=strategy,
            objective=objective,
            energy_scope=energy_scope,
            requests_per_round=requests_per_round,
            slo_p95_s=slo_p95_s,
            power_cap_w=power_cap_w,
            seed=seed,
            prior=None if prior is None else Path(prior),
        )
        self.workload = workload
        traffic = _traffic(
            workload,
            requests_per_round,
            arrival_rate_per_s=arrival_rate_per_s,
            arrivals=arrivals,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
        )
        settings = session_settings(device, self.search, profile=profile_table(device))
        header = run_header(
            settings,
            self.search,
            traffic,
            device=device.describe(),
            engine={"backend": "library"},
            model=model,
            mode="library",
            workload_name=traffic.arrivals,
            output_tokens=traffic.output_tokens,
        )
        settings, header = with_prior(settings, self.search, header)
        self.run_log = RunLog(run_log, overwrite=overwrite)
        self.run_log.write(header)
        self.session = TuningSession(settings, traffic, run_log=self.run_log)

    @property
    def clock(self) -> Clock:
        """The device's clock: stamp arrivals and batch times with it (virtual time on the simulator)."""
        return self.device.clock

    @property
    def space(self) -> ConfigSpace:
        """The grid searched."""
        return self.session.space

    @property
    def traffic(self) -> Traffic:
        """The traffic the search plans for."""
        return self.session.traffic

    @property
    def rounds(self) -> list[RoundRecord]:
        """Every round recorded so far (round 0 is the baseline)."""
        return self.session.rounds

    def next_config(self) -> Config:
        """Ask: the config to serve next (the baseline first, then the strategy's proposal)."""
        return self.session.next_config()

    def window_requests(self, config: Config) -> int:
        """How many requests a round at `config` should serve (at least `requests_per_round`, whole batches)."""
        return self.traffic.window_requests(config.batch_size)

    def record(self, config: Config, observation: Observation, *, note: str | None = None) -> RoundRecord:
        """Tell: a window served at `config` measured `observation`; returns the logged round with its cost."""
        return self.session.record(config, observation, note=note)

    def round(self, config: Config) -> Round:
        """A round at `config` for a `with` block: pins the clock (where allowed), measures, records at the end."""
        return Round(self, config)

    def best(self) -> Config:
        """The config to hold: the strategy's choice (the baseline before anything is measured)."""
        return self.session.best()

    def set_traffic(
        self,
        *,
        arrival_rate_per_s: float | None = None,
        arrivals: TrafficKind | None = None,
        prompt_tokens: float | None = None,
        output_tokens: float | None = None,
    ) -> Traffic:
        """The traffic changed (only what is given changes): the strategy re-plans at once. Returns the new traffic."""
        changes: dict[str, object] = {
            "rate_per_s": arrival_rate_per_s,
            "arrivals": arrivals,
            "prompt_tokens": prompt_tokens,
            "output_tokens": output_tokens,
        }
        traffic = replace(self.traffic, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]
        self.session.set_traffic(traffic)
        return traffic

    def finish(self) -> TuneResult:
        """The chosen config against the baseline, every round, and the run log's summary record."""
        if not self.rounds:
            raise ConfigError("nothing was recorded: serve the baseline round first (next_config(), then record)")
        return self.session.finish()

    def close(self) -> None:
        """Close the run log (idempotent)."""
        self.run_log.close()

    def __enter__(self) -> Tuner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Round:
    """One measurement round at a config, served by your loop: an energy window over the batches you report.

    `run(engine, batch)` runs and measures a batch on an edpilot `Engine`; `add_batch(...)` reports one your own
    engine ran (arrival times and start/end on `tuner.clock`). A config with decode levels (`phase_clocks=True`)
    runs its decode at them under `run`; your own engine calls `rnd.phase.on_decode()` at each batch's first
    decode step and `rnd.phase.end_batch()` when the batch ends (`rnd.phase` is None on a grid without decode
    levels). When the block ends the batches become an `Observation` (`runner.summarize`) and the tuner records
    it: `rnd.record` is the logged round. A block that raises records nothing.
    """

    def __init__(self, tuner: Tuner, config: Config) -> None:
        self.tuner = tuner
        self.config = tuner.space.validate(config)
        self.batches: list[ServedBatch] = []
        self.observation: Observation | None = None
        self.record: RoundRecord | None = None
        self._window: EnergyWindow | None = None
        self.phase: PhaseSwitch | None = None  # a config with decode levels: its switch, set when the block starts

    @property
    def requests(self) -> int:
        """Requests served in this round so far."""
        return sum(len(b.requests) for b in self.batches)

    @property
    def full(self) -> bool:
        """Whether the round has served the requests a window at this config needs."""
        return self.requests >= self.tuner.window_requests(self.config)

    def run(self, engine: Engine, batch: Sequence[Request]) -> list[Completion]:
        """Run `batch` on `engine` inside the round and measure it; returns the completions."""
        device, keeping = self.tuner.device, _Keep(engine)
        self.batches.append(run_batch(batch, engine=keeping, device=device, clock=device.clock, phase=self.phase))
        return keeping.last

    def add_batch(
        self,
        requests: Sequence[Request],
        *,
        start_s: float,
        end_s: float,
        energy_j: float | None = None,
        ttfts_s: Sequence[float | None] | None = None,
        errors: Sequence[str] = (),
    ) -> None:
        """Report a batch your engine ran: its requests (arrival times), start and end (s) and energy (J) if known."""
        if not requests:
            raise ConfigError("a batch has at least one request")
        if not end_s >= start_s:
            raise ConfigError(f"a batch ends after it starts: start {start_s} s, end {end_s} s")
        ttfts = tuple(ttfts_s) if ttfts_s is not None else (None,) * len(requests)
        self.batches.append(ServedBatch(tuple(requests), start_s, end_s, energy_j, ttfts, tuple(errors)))

    def __enter__(self) -> Round:
        device, config = self.tuner.device, self.config
        caps = device.capabilities
        self._window = EnergyWindow(device, device.clock, update_interval_ms=caps.meter_update_interval_ms).begin()
        set_levels(device, config)  # inside the window, as the runner switches
        self.phase = phase_switch(device, device.clock, prefill=config.device_levels(), decode=config.decode_levels())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            return
        assert self._window is not None
        self._window.end()
        if not self.batches:
            raise ConfigError(f"the round at {self.config} served no batch: nothing to record")
        self.observation = summarize(
            self.batches,
            window=self._window,
            energy_scope=self.tuner.search.energy_scope,  # type: ignore[arg-type]
            batch_size=self.config.batch_size,
            actual_freq_mhz=self.tuner.device.current_freq_mhz(),
        )
        self.record = self.tuner.record(self.config, self.observation)


class _Keep:
    """An engine wrapper that keeps the completions of its last batch (`run_batch` measures, the caller needs them)."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.name, self.needs_warmup = engine, engine.name, False
        self.last: list[Completion] = []

    def generate(
        self, batch: Sequence[Request], on_token: TokenSink | None = None, *, on_decode: DecodeHook | None = None
    ) -> list[Completion]:
        """The wrapped engine's answer, kept; `on_token` and `on_decode` are passed on when given."""
        if on_decode is not None:
            self.last = self.engine.generate(batch, on_token, on_decode=on_decode)
        else:
            self.last = self.engine.generate(batch) if on_token is None else self.engine.generate(batch, on_token)
        return self.last

    def describe(self) -> dict[str, object]:
        return self.engine.describe()

    def close(self) -> None:
        """The engine's owner closes it."""


def _traffic(
    workload: RequestSource | None,
    requests_per_round: int,
    *,
    arrival_rate_per_s: float | None,
    arrivals: TrafficKind | None,
    prompt_tokens: float | None,
    output_tokens: float | None,
) -> Traffic:
    """The traffic from a workload, or from the rate and lengths (ConfigError for neither, or for both)."""
    given = {"arrival_rate_per_s": arrival_rate_per_s, "arrivals": arrivals}
    given |= {"prompt_tokens": prompt_tokens, "output_tokens": output_tokens}
    if workload is not None:
        named = [name for name, value in given.items() if value is not None]
        if named:
            raise ConfigError(f"the workload already says the traffic: drop {', '.join(named)}, or the workload")
        return workload.traffic(requests_per_round)
    if arrival_rate_per_s is None:
        raise ConfigError("say the traffic once: arrival_rate_per_s=REQ_PER_S, or workload=edpilot.Workload(...)")
    return Traffic(
        arrivals=arrivals or "uniform",
        rate_per_s=arrival_rate_per_s,
        prompt_tokens=128.0 if prompt_tokens is None else prompt_tokens,
        output_tokens=70.0 if output_tokens is None else output_tokens,
        requests_per_round=requests_per_round,
    )


def _as_list(values: str | Sequence[float] | Sequence[int] | None) -> str | None:
    if values is None or isinstance(values, str):
        return values
    return ",".join(f"{v:g}" for v in values)
