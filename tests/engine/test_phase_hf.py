"""Per-phase clocks in the hf engine (tiny random-weight preset on CPU): the hook runs between the prefill's
forward pass and the first decode step's, and a fake Jetson's clocks follow it."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from edpilot.engine import EngineOptions, open_engine  # noqa: E402
from edpilot.hardware.jetson import JetsonDevice  # noqa: E402
from edpilot.hardware.state import StateStore  # noqa: E402
from edpilot.runner import run_batch  # noqa: E402
from edpilot.serving.phase import PhaseSwitch  # noqa: E402
from edpilot.workload import Request, builtin_prompts  # noqa: E402
from tests.hardware.fake_jetson import build_tree  # noqa: E402

PREFILL = {"gpu_mhz": 1300.5, "emc_mhz": 3199.0}
DECODE = {"gpu_mhz": 624.75, "emc_mhz": 665.6}


@pytest.fixture(scope="module")
def engine():
    e = open_engine("hf:tiny", EngineOptions(torch_device="cpu"))
    yield e
    e.close()


def requests(n, max_new):
    prompts = builtin_prompts()
    return [Request(i, 0.0, prompts[i % len(prompts)], 10, max_new) for i in range(n)]


def forwards(engine, events, what=lambda: None):
    """Log each forward pass as ("forward", tokens fed per sequence, what())."""

    def hook(module, args, kwargs):
        events.append(("forward", kwargs["input_ids"].shape[1], what()))

    return engine.model.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_the_hook_runs_once_between_the_prefill_forward_and_the_first_decode_forward(engine, batch_size):
    events = []
    handle = forwards(engine, events)
    try:
        out = engine.generate(requests(batch_size, 5), on_decode=lambda: events.append(("decode", None, None)))
    finally:
        handle.remove()
    kinds = [(kind, n if kind == "decode" or n == 1 else "prompt") for kind, n, _ in events]
    assert kinds == [("forward", "prompt"), ("decode", None)] + [("forward", 1)] * 4
    assert all(c.output_tokens == 5 for c in out)


def test_a_single_token_answer_has_no_decode_step_and_no_hook(engine):
    calls = []
    out = engine.generate(requests(2, 1), on_decode=lambda: calls.append(1))
    assert calls == [] and [c.output_tokens for c in out] == [1, 1]


def test_the_hook_does_not_change_the_answer(engine):
    reqs = requests(2, 6)
    assert [c.text for c in engine.generate(reqs, on_decode=lambda: None)] == [c.text for c in engine.generate(reqs)]


def test_a_jetsons_clocks_are_at_decode_levels_for_every_decode_step_and_back_after(engine, tmp_path):
    fake = build_tree(tmp_path / "root").start()
    dev = JetsonDevice(root=fake.root, state_store=StateStore(tmp_path / "state"))
    try:
        for name, level in PREFILL.items():
            dev.set_knob(name, level)
        switch = PhaseSwitch(dev, dev.clock, prefill=PREFILL, decode=DECODE)
        events = []

        def levels():
            return int(fake.read("max_freq")), int(fake.read_emc("rate"))

        handle = forwards(engine, events, levels)
        try:
            served = run_batch(requests(2, 4), engine=engine, device=dev, clock=dev.clock, phase=switch)
        finally:
            handle.remove()
        assert [e[2] for e in events] == [(1300500000, 3199000000)] + [(624750000, 665600000)] * 3
        assert levels() == (1300500000, 3199000000)  # the prefill levels are back when the batch ends
        assert switch.switches == 1 and switch.switch_s > 0
        assert served.end_s - served.start_s > switch.switch_s  # the writes happened inside the measured batch
        dev.restore()
        assert (fake.read("max_freq"), fake.read_emc("mrq_rate_locked")) == ("1300500000", "0")
    finally:
        dev.close()
        fake.stop()
