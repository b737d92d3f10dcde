"""The simulated device and engine: they share a virtual clock and a performance model."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edpilot.clock import Clock, ScaledClock, VirtualClock
from edpilot.engine.base import Completion, DecodeHook, Step, TokenSink
from edpilot.errors import ConfigError, DeviceError
from edpilot.hardware.base import EMC_KNOB, GPU_KNOB, Device, DeviceCapabilities, Knob, gpu_knob
from edpilot.sim.governor import governed_idle_j
from edpilot.sim.model import AnalyticModel, BatchCost, EmcView, Levels, PerformanceModel, ProfileModel, noise_factors
from edpilot.workload import Request

log = logging.getLogger(__name__)


class SimDevice:
    """A GPU whose clock and energy meter live in the model; idle power accrues between batches.

    `read_only` keeps it at its highest level (batch-only search, as on a GPU whose clocks may not change);
    `dry_run` logs the level it would set and stays where it is, as a real device's dry run does.
    `release_clocks()` leaves the clock to the board's stock governor (sim.governor) until the next pin.
    """

    def __init__(
        self,
        model: PerformanceModel,
        clock: VirtualClock | ScaledClock,
        *,
        name: str,
        read_only: bool = False,
        dry_run: bool = False,
        emc: EmcView | ProfileModel | None = None,
    ) -> None:
        self.name = name
        self.emc = emc  # the memory clock knob (`emc_mhz`): the model seen at the level it holds
        reason = "--read-only was given" if read_only else ("dry run: clocks are never written" if dry_run else None)
        self.capabilities = DeviceCapabilities(
            can_set_clocks=reason is None,
            read_only_reason=reason,
            dry_run=dry_run and not read_only,
            has_meter=model.has_energy,
            meter_update_interval_ms=None,
        )
        self.model = model
        self.clock = clock
        self._levels_mhz = tuple(sorted(model.freqs_mhz))
        self._freq_mhz = self._levels_mhz[-1]
        self._energy_j = 0.0
        self._accounted_until_s = clock.now_s()
        self.governed = False  # True after release_clocks(): the stock governor, not a pinned level
        self._busy_until_s = clock.now_s()
        self._busy = False  # a batch is running: its energy is added at its end, not charged as idle

    def freqs_mhz(self) -> tuple[float, ...]:
        """The model's frequency levels (MHz)."""
        return self._levels_mhz

    def current_freq_mhz(self) -> float:
        """The pinned frequency (MHz)."""
        return self._freq_mhz

    def set_freq_mhz(self, freq_mhz: float) -> None:
        """Pin a level; idle energy up to now is charged at the old level."""
        if freq_mhz not in self._levels_mhz:
            raise DeviceError(f"{freq_mhz:g} MHz is not a level of {self.name}")
        if self.capabilities.dry_run:
            log.info("dry run: would pin %s at %g MHz", self.name, freq_mhz)
            return
        if not self.capabilities.can_set_clocks:
            raise DeviceError(f"{self.name} is read-only: {self.capabilities.read_only_reason}")
        self._accrue_idle()
        self._freq_mhz = freq_mhz
        self.governed = False

    def energy_j(self) -> float | None:
        """Monotonic energy counter (J), idle time included up to the clock's now; None for a latency-only model."""
        if not self.capabilities.has_meter:
            return None
        self._accrue_idle()
        return self._energy_j

    def run_batch(
        self,
        cost: BatchCost,
        *,
        pauses_s: Sequence[float] = (),
        on_pause: Callable[[int], None] | None = None,
        start_s: float | None = None,
    ) -> None:
        """Spend a batch's service time on the clock and add its energy to the counter.

        With `pauses_s` (offsets from the batch start, s, ascending), `on_pause(i)` is called when the clock
        reaches each: the batch's tokens are handed out as they are made. Its energy is added at its end.
        `start_s` (not after now) starts it where the previous step ended: on a wall-paced clock the host work
        between steps would otherwise add up as simulated time.
        """
        start_s = self.clock.now_s() if start_s is None else min(start_s, self.clock.now_s())
        self._accrue_idle(until_s=start_s)
        self._busy = True
        try:
            for i, at_s in enumerate(pauses_s):
                self.clock.sleep_until(start_s + at_s)
                if on_pause is not None:
                    on_pause(i)
            self.clock.sleep_until(start_s + cost.service_s)
        finally:
            self._busy = False
            self._energy_j += cost.energy_j or 0.0
            self._accounted_until_s = self._busy_until_s = max(self._accounted_until_s, start_s + cost.service_s)

    def describe(self) -> dict[str, object]:
        """Backend, levels and the model behind it."""
        return {
            "backend": "sim",
            "name": self.name,
            "freqs_mhz": list(self._levels_mhz),
            **(
                {}
                if self.emc is None
                else {"emc_levels_mhz": list(self.emc.emc_levels_mhz), "emc_mhz": self.emc.emc_mhz}
            ),
            **self.model.describe(),
        }

    def restore(self) -> None:
        """Back to the highest levels, the state a fresh simulated board starts in."""
        self._accrue_idle()
        self._freq_mhz = self._levels_mhz[-1]
        if self.emc is not None:
            self.emc.emc_mhz = self.emc.emc_levels_mhz[-1]
        self.governed = False

    def release_clocks(self) -> None:
        """Leave the GPU clock to the board's stock governor (sim.governor) until the next pin."""
        self.restore()
        self.governed = True

    @property
    def priced_model(self) -> PerformanceModel:
        """The model that prices batches and idle time: at the memory clock's level where the board has one."""
        return self.emc if self.emc is not None else self.model

    def knobs(self) -> tuple[Knob, ...]:
        """The GPU clock, and the memory clock where the model has one."""
        if self.emc is None:
            return (gpu_knob(self),)
        caps = self.capabilities
        reason = None if caps.can_set_clocks else caps.read_only_reason
        emc = Knob(EMC_KNOB, "MHz", self.emc.emc_levels_mhz, writable=reason is None, read_only_reason=reason)
        return gpu_knob(self), emc

    def knob_level(self, name: str) -> float | None:
        """The level a knob holds (MHz)."""
        if name == GPU_KNOB:
            return self._freq_mhz
        if name == EMC_KNOB and self.emc is not None:
            return self.emc.emc_mhz
        raise DeviceError(f"{self.name} has no knob {name!r}")

    def set_knob(self, name: str, level: float) -> None:
        """Pin the GPU (as set_freq_mhz) or the memory clock; idle energy up to now is charged at the old level."""
        if name == GPU_KNOB or self.emc is None:
            if name != GPU_KNOB:
                raise DeviceError(f"{self.name} has no knob {name!r}")
            self.set_freq_mhz(level)
            return
        if name != EMC_KNOB:
            raise DeviceError(f"{self.name} has no knob {name!r}")
        if level not in self.emc.emc_levels_mhz:
            raise DeviceError(f"{level:g} MHz is not a memory clock level of {self.name}")
        if self.capabilities.dry_run:
            log.info("dry run: would pin %s memory clock at %g MHz", self.name, level)
            return
        if not self.capabilities.can_set_clocks:
            raise DeviceError(f"{self.name} is read-only: {self.capabilities.read_only_reason}")
        self._accrue_idle()
        self.emc.emc_mhz = level

    def close(self) -> None:
        """Nothing to release."""

    def _accrue_idle(self, until_s: float | None = None) -> None:
        if self._busy:
            return
        now_s = self.clock.now_s() if until_s is None else until_s
        idle_s = now_s - self._accounted_until_s
        if idle_s > 0 and self.capabilities.has_meter and self.governed:
            self._energy_j += governed_idle_j(
                self.priced_model.idle_power_w,
                self._levels_mhz,
                start_s=self._accounted_until_s,
                end_s=now_s,
                busy_until_s=self._busy_until_s,
            )
        elif idle_s > 0 and self.capabilities.has_meter:
            self._energy_j += self.priced_model.idle_power_w(self._freq_mhz) * idle_s
        self._accounted_until_s = now_s


class SimEngine:
    """Runs a batch as the performance model says: every request decodes exactly its max_new_tokens.

    On a SimDevice the batch's time and energy go to the virtual clock and the simulated meter; on a
    real device the engine only waits on `clock` for the modelled time (the real meter measures).
    `filler_text` answers each request with its prompt's words repeated to its output length (the live
    server's sim engine: an answer that shows which prompt it belongs to); otherwise the text is empty.
    """

    name = "sim"
    needs_warmup = False

    def __init__(
        self,
        device: Device,
        model: PerformanceModel,
        clock: Clock,
        rng: np.random.Generator,
        *,
        filler_text: bool = False,
    ) -> None:
        self.device, self.model, self.clock, self.rng = device, model, clock, rng
        self.filler_text = filler_text
        self._joining: list[_Sequence] = []
        self._running: list[_Sequence] = []
        self._cancelled: set[int] = set()
        self._steps_end_s: float | None = None  # where the last step ended on the model's timeline

    def generate(
        self, batch: Sequence[Request], on_token: TokenSink | None = None, *, on_decode: DecodeHook | None = None
    ) -> list[Completion]:
        """Spend the batch's modelled service time: the first tokens at its TTFT, the rest evenly over the decode
        steps (handed to `on_token` as the clock reaches them); every request decodes its max_new_tokens.

        With `on_decode`, the prefill runs at the levels in force, `on_decode()` is called at its end, and the
        decode runs at the levels it leaves: the batch costs what `AnalyticModel.phase_cost` says."""
        steps = max(r.max_new_tokens for r in batch)
        prompts = [r.prompt_tokens for r in batch]
        words = [_Words(r.prompt, self.filler_text) for r in batch]

        def emit(k: int) -> None:
            for i, r in enumerate(batch):
                if k < r.max_new_tokens and on_token is not None:
                    on_token(i, words[i].piece(k))

        if on_decode is not None:
            token_s = self._spend_phased(prompts, steps, on_decode, emit, streaming=on_token is not None)
            ttft_s: float | None = token_s[0]
        else:
            cost = self.model.batch_cost(self._freq_mhz(), prompts, steps, self.rng)
            first_s = cost.service_s / steps if cost.ttft_s is None else cost.ttft_s  # a profile records no TTFT
            step_s = (cost.service_s - first_s) / max(steps - 1, 1)
            token_s = [first_s + k * step_s for k in range(steps)]
            self._spend(cost, token_s if on_token is not None else (), emit)
            ttft_s = cost.ttft_s
        return [
            Completion(
                text=words[i].text(r.max_new_tokens),
                output_tokens=r.max_new_tokens,
                ttft_s=ttft_s,
                last_token_s=token_s[r.max_new_tokens - 1] if r.max_new_tokens > 0 else None,
            )
            for i, r in enumerate(batch)
        ]

    def _spend_phased(
        self, prompts: list[int], steps: int, on_decode: DecodeHook, emit: Callable[[int], None], *, streaming: bool
    ) -> list[float]:
        """Prefill at the levels in force, `on_decode()`, then decode at the levels it leaves, priced by
        `phase_cost` (switch stalls and delays included) with one batch's noise; each token's time (s) from the
        batch start. The prefill is spent at its own levels; the switch's costs land in the decode part."""
        model = self._analytic()
        time_factor, energy_factor = noise_factors(self.rng)
        prefill = self._levels()
        first = model.expected_cost(prefill.gpu_mhz, prompts, 1, emc_mhz=prefill.emc_mhz)
        start_s = self.clock.now_s()
        first_s = first.service_s * time_factor
        prefill_j = (first.energy_j or 0.0) * energy_factor
        self._spend(BatchCost(first_s, prefill_j, first_s), [first_s] if streaming else [], emit)
        if steps <= 1:
            return [first_s]
        on_decode()
        whole = model.phase_cost(prefill, self._levels(), prompts, steps).batch_cost()
        rest_s = max(whole.service_s - first.service_s, 0.0) * time_factor
        rest_j = max((whole.energy_j or 0.0) - (first.energy_j or 0.0), 0.0) * energy_factor
        step_s = rest_s / (steps - 1)
        decode_at_s = self.clock.now_s() - start_s
        pauses_s = [k * step_s for k in range(1, steps)] if streaming else []
        self._spend(BatchCost(rest_s, rest_j, None), pauses_s, lambda i: emit(i + 1))
        return [first_s] + [decode_at_s + k * step_s for k in range(1, steps)]

    def _analytic(self) -> AnalyticModel:
        """The analytic model behind the engine (per-phase costs need it; a replayed profile has none)."""
        model = self.model.model if isinstance(self.model, EmcView) else self.model
        if not isinstance(model, AnalyticModel):
            raise ConfigError("--phase-clocks needs the analytic simulator: a replayed profile has no per-phase costs")
        return model

    def _levels(self) -> Levels:
        """The (GPU, memory clock) levels the board holds now; memory clock None: the model's top level."""
        return Levels(self._freq_mhz(), self.model.emc_mhz if isinstance(self.model, EmcView) else None)

    def add(self, request: Request) -> None:
        """Join the running sequences at the next step (continuous batching)."""
        self._joining.append(_Sequence(request, _Words(request.prompt, self.filler_text)))

    def running(self) -> int:
        """Sequences added and not finished."""
        return len(self._joining) + len(self._running)

    def cancel(self, request_id: int) -> None:
        """Stop a request's sequence (its client went away): it leaves, failed, at the next step."""
        self._cancelled.add(request_id)

    def wake(self) -> None:
        """Steps never block waiting: nothing to wake."""

    def step(self) -> Step:
        """One step priced by the model: a token for every running sequence, prefill (a first token) for joiners."""
        gone = {q.request.request_id for q in self._joining + self._running} & self._cancelled
        self._cancelled.clear()
        self._joining = [q for q in self._joining if q.request.request_id not in gone]
        self._running = [q for q in self._running if q.request.request_id not in gone]
        if not self._joining and not self._running:
            return Step({}, {rid: Completion("", 0, error="cancelled: the client went away") for rid in gone})
        joining, self._joining = self._joining, []
        cost = self.model.sample_step_cost(
            self._freq_mhz(),
            [q.request.prompt_tokens + q.tokens for q in self._running],
            [q.request.prompt_tokens for q in joining],
            self.rng,
        )
        start_s = self.clock.now_s()
        if self._running and self._steps_end_s is not None:
            start_s = max(self._steps_end_s, start_s - cost.service_s)  # back to back with the previous step
            start_s = max([start_s, *(q.request.arrival_s for q in joining)])  # never before a joiner arrived
        for q in joining:
            q.joined_s = start_s
        self._spend(cost, (), lambda _: None, start_s=start_s)
        self._steps_end_s = start_s + cost.service_s
        now_s = self.clock.now_s()
        self._running += joining
        text: dict[int, str] = {}
        finished = {rid: Completion("", 0, error="cancelled: the client went away") for rid in gone}
        for q in self._running:
            rid = q.request.request_id
            text[rid] = q.words.piece(q.tokens)
            q.tokens += 1
            if q.tokens == 1:
                q.first_s = now_s - q.joined_s
            if q.tokens >= q.request.max_new_tokens:
                finished[rid] = Completion(
                    q.words.text(q.tokens), q.tokens, ttft_s=q.first_s, last_token_s=now_s - q.joined_s
                )
        self._running = [q for q in self._running if q.request.request_id not in finished]
        return Step(text, finished)

    def _freq_mhz(self) -> float:
        freq_mhz = self.device.current_freq_mhz()
        return max(self.model.freqs_mhz) if freq_mhz is None else freq_mhz  # no clock (cpu): the highest level

    def _spend(
        self,
        cost: BatchCost,
        pauses_s: Sequence[float],
        on_pause: Callable[[int], None],
        *,
        start_s: float | None = None,
    ) -> None:
        if isinstance(self.device, SimDevice):
            self.device.run_batch(cost, pauses_s=pauses_s, on_pause=on_pause, start_s=start_s)
            return
        start_s = self.clock.now_s() if start_s is None else start_s
        for i, at_s in enumerate(pauses_s):
            self.clock.sleep_until(start_s + at_s)
            on_pause(i)
        self.clock.sleep_until(start_s + cost.service_s)

    def describe(self) -> dict[str, object]:
        """Engine backend and the model it models."""
        return {"backend": "sim", "model": self.model.describe().get("model")}

    def close(self) -> None:
        """Nothing to release."""


class _Words:
    """A request's answer, word by word: filler cycled from its prompt, or empty text."""

    def __init__(self, prompt: str, filler: bool) -> None:
        self.words = (prompt.split() or ["_"]) if filler else None

    def piece(self, k: int) -> str:
        """The k-th token's text (0-based): a word, with a space before all but the first."""
        if self.words is None:
            return ""
        word = self.words[k % len(self.words)]
        return word if k == 0 else " " + word

    def text(self, tokens: int) -> str:
        """The first `tokens` tokens' text."""
        return "".join(self.piece(k) for k in range(tokens))


@dataclass
class _Sequence:
    """A request decoding under continuous batching: tokens so far, when it joined, its first token's time."""

    request: Request
    words: _Words
    tokens: int = 0
    joined_s: float = 0.0
    first_s: float | None = None
