"""Tokens as they are made: the sim engine streams per decode step on its clock, and prices steps like batches."""

from __future__ import annotations

import pytest

from edpilot.engine.base import Completion, SequenceEngine
from edpilot.sim import open_sim
from edpilot.workload import Request

FREQ_MHZ = 930.75


def _requests(*max_new: int) -> list[Request]:
    return [Request(i, 0.0, f"word{i} other{i}", 100 + 10 * i, n) for i, n in enumerate(max_new)]


def test_static_batch_streams_each_token_when_the_clock_reaches_it() -> None:
    sim = open_sim("sim:orin-agx-32gb", seed=3, filler_text=True)
    sim.device.set_freq_mhz(FREQ_MHZ)
    batch = _requests(20, 12)
    seen: list[tuple[int, str, float]] = []
    start_s = sim.clock.now_s()
    out = sim.engine.generate(batch, lambda i, text: seen.append((i, text, sim.clock.now_s() - start_s)))
    service_s = sim.clock.now_s() - start_s
    first = [t for i, _, t in seen if i == 0]
    assert len(first) == 20 and len([1 for i, _, _ in seen if i == 1]) == 12
    assert first[0] == pytest.approx(out[0].ttft_s) and first[0] < 0.5 * service_s  # long before the batch ends
    assert first[-1] == pytest.approx(service_s) and out[0].last_token_s == pytest.approx(service_s)
    assert all(b > a for a, b in zip(first, first[1:]))  # one step after another, on the clock
    assert "".join(text for i, text, _ in seen if i == 1) == out[1].text == " ".join(["word1", "other1"] * 6)
    assert out[0].itl_s == pytest.approx((service_s - out[0].ttft_s) / 19)


@pytest.mark.parametrize("emc", ["top", "lowest"])
def test_a_static_batch_priced_step_by_step_costs_what_the_batch_costs(emc: str) -> None:
    model = open_sim("sim:orin-agx-32gb").model
    emc_mhz = None if emc == "top" else min(model.emc_levels_mhz)
    prompts, tokens = [100, 140, 90], 50
    batch = model.expected_cost(FREQ_MHZ, prompts, tokens, emc_mhz=emc_mhz)
    first = model.step_cost(FREQ_MHZ, [], prompts, emc_mhz=emc_mhz)
    steps = [model.step_cost(FREQ_MHZ, [p + k for p in prompts], [], emc_mhz=emc_mhz) for k in range(1, tokens)]
    assert first.service_s == pytest.approx(batch.ttft_s, rel=1e-12)
    assert first.service_s + sum(s.service_s for s in steps) == pytest.approx(batch.service_s, rel=1e-12)
    assert first.energy_j + sum(s.energy_j for s in steps) == pytest.approx(batch.energy_j, rel=1e-12)
    # More context costs more; a joiner's prefill rides in the step and lengthens it.
    assert model.step_cost(FREQ_MHZ, [2000], []).service_s > model.step_cost(FREQ_MHZ, [100], []).service_s
    assert model.step_cost(FREQ_MHZ, [100], [500]).service_s > model.step_cost(FREQ_MHZ, [100], []).service_s


def test_sim_steps_let_a_request_join_the_running_ones_at_the_next_step() -> None:
    sim = open_sim("sim:orin-agx-32gb", seed=0, filler_text=True)
    engine = sim.engine
    assert isinstance(engine, SequenceEngine)
    first, late = _requests(4, 2)
    engine.add(first)
    step = engine.step()
    assert step.text == {0: "word0"} and not step.finished
    engine.add(late)  # joins at the next step, while the first one keeps decoding
    step = engine.step()
    assert step.text == {0: " other0", 1: "word1"} and engine.running() == 2
    step = engine.step()
    assert set(step.finished) == {1} and step.finished[1].text == "word1 other1"
    step = engine.step()
    assert set(step.finished) == {0} and engine.running() == 0
    done: Completion = step.finished[0]
    assert done.output_tokens == 4 and done.text == "word0 other0 word0 other0"
    assert 0 < done.ttft_s < done.last_token_s


def test_a_cancelled_sequence_leaves_at_the_next_step_with_an_error() -> None:
    sim = open_sim("sim:orin-agx-32gb", seed=0)
    for r in _requests(10, 10):
        sim.engine.add(r)
    sim.engine.step()
    sim.engine.cancel(1)
    step = sim.engine.step()
    assert step.finished[1].error is not None and set(step.text) == {0} and sim.engine.running() == 1
