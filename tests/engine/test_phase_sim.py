"""Per-phase clocks on the simulator: the engine prices prefill and decode at their own levels (`phase_cost`)."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.errors import ConfigError
from edpilot.runner import run_batch
from edpilot.serving.phase import PhaseSwitch
from edpilot.sim import Levels, open_sim
from edpilot.sim.model import noise_factors
from edpilot.sim.profile import ProfileRow, write_profile
from edpilot.workload import Request

PROMPT_TOKENS = (100, 1500)
SEED = 11


def batch(n=4, prompt_tokens=100, max_new=70):
    return [Request(i, 0.0, f"prompt {i}", prompt_tokens, max_new) for i in range(n)]


def twin_factors(draws=1):
    """The noise factors the engine's rng (seed SEED) gives its `draws`-th batch."""
    rng = np.random.default_rng(SEED)
    return [noise_factors(rng) for _ in range(draws)][-1]


def spent(platform, reqs, **kwargs):
    """Run one batch; (virtual seconds, joules on the meter, completions)."""
    t0, e0 = platform.clock.now_s(), platform.device.energy_j()
    out = platform.engine.generate(reqs, **kwargs)
    return platform.clock.now_s() - t0, platform.device.energy_j() - e0, out


@pytest.mark.parametrize("prompt_tokens", PROMPT_TOKENS)
def test_a_hook_that_switches_nothing_costs_exactly_the_plain_batch(prompt_tokens):
    plain, phased = open_sim("sim:orin-agx-32gb", seed=SEED), open_sim("sim:orin-agx-32gb", seed=SEED)
    for p in (plain, phased):
        p.device.set_knob("gpu_mhz", 714.0)
        p.device.set_knob("emc_mhz", 2133.0)
    calls = []
    t_plain, e_plain, out_plain = spent(plain, batch(prompt_tokens=prompt_tokens))
    t_phase, e_phase, out_phase = spent(phased, batch(prompt_tokens=prompt_tokens), on_decode=lambda: calls.append(1))
    assert calls == [1]
    assert t_phase == pytest.approx(t_plain, rel=1e-12) and e_phase == pytest.approx(e_plain, rel=1e-12)
    assert [c.ttft_s for c in out_phase] == pytest.approx([c.ttft_s for c in out_plain], rel=1e-12)
    assert [c.last_token_s for c in out_phase] == pytest.approx([c.last_token_s for c in out_plain], rel=1e-12)


@pytest.mark.parametrize("prompt_tokens", PROMPT_TOKENS)
@pytest.mark.parametrize(
    "prefill, decode",
    [(Levels(930.75, 3199.0), Levels(612.0, 3199.0)), (Levels(930.75, 665.6), Levels(714.0, 3199.0))],
)
def test_prefill_and_decode_are_priced_at_their_own_levels(prompt_tokens, prefill, decode):
    p = open_sim("sim:orin-agx-32gb", seed=SEED)
    p.device.set_knob("gpu_mhz", prefill.gpu_mhz)
    p.device.set_knob("emc_mhz", prefill.emc_mhz)
    seen = []

    def switch():
        seen.append((p.device.knob_level("gpu_mhz"), p.device.knob_level("emc_mhz")))
        p.device.set_knob("gpu_mhz", decode.gpu_mhz)
        p.device.set_knob("emc_mhz", decode.emc_mhz)

    reqs = batch(prompt_tokens=prompt_tokens)
    time_s, energy_j, out = spent(p, reqs, on_decode=switch)
    assert seen == [(prefill.gpu_mhz, prefill.emc_mhz)]  # called once, at the prefill's levels
    model = p.device.model
    want = model.phase_cost(prefill, decode, [prompt_tokens] * 4, 70).batch_cost()
    time_factor, energy_factor = twin_factors()
    assert time_s == pytest.approx(want.service_s * time_factor, rel=1e-9)
    assert energy_j == pytest.approx(want.energy_j * energy_factor, rel=1e-9)
    prefill_only = model.expected_cost(prefill.gpu_mhz, [prompt_tokens] * 4, 1, emc_mhz=prefill.emc_mhz)
    assert out[0].ttft_s == pytest.approx(prefill_only.service_s * time_factor, rel=1e-9)
    assert out[0].last_token_s == pytest.approx(time_s, rel=1e-9)
    one_level = model.expected_cost(prefill.gpu_mhz, [prompt_tokens] * 4, 70, emc_mhz=prefill.emc_mhz)
    assert want.service_s != pytest.approx(one_level.service_s, rel=1e-3)  # the switch did change the price


def test_tokens_before_the_hook_are_the_prefills_and_the_rest_come_after_it():
    p = open_sim("sim:orin-agx-32gb", seed=SEED)
    events = []
    p.engine.generate(
        batch(n=2, max_new=4),
        lambda i, text: events.append(("token", i, p.clock.now_s())),
        on_decode=lambda: events.append(("decode", None, p.clock.now_s())),
    )
    kinds = [e[0] for e in events]
    assert kinds == ["token", "token", "decode"] + ["token"] * 6
    times = [e[2] for e in events]
    assert times == sorted(times)


def test_a_batch_without_a_decode_step_never_calls_the_hook():
    p = open_sim("sim:orin-agx-32gb", seed=SEED)
    calls = []
    out = p.engine.generate(batch(max_new=1), on_decode=lambda: calls.append(1))
    assert calls == [] and all(c.output_tokens == 1 for c in out)


def test_run_batch_switches_for_decode_and_back_inside_the_batch():
    p = open_sim("sim:orin-agx-32gb", seed=SEED)
    p.device.set_knob("gpu_mhz", 930.75)
    p.device.set_knob("emc_mhz", 665.6)
    switch = PhaseSwitch(
        p.device, p.clock, prefill={"gpu_mhz": 930.75, "emc_mhz": 665.6}, decode={"gpu_mhz": 612.0, "emc_mhz": 3199.0}
    )
    levels_at_tokens = []
    served = run_batch(
        batch(n=2, max_new=3),
        engine=p.engine,
        device=p.device,
        clock=p.clock,
        on_token=lambda i, t: levels_at_tokens.append((p.device.knob_level("gpu_mhz"), p.device.knob_level("emc_mhz"))),
        phase=switch,
    )
    assert levels_at_tokens[:2] == [(930.75, 665.6)] * 2 and levels_at_tokens[2:] == [(612.0, 3199.0)] * 4
    assert (p.device.knob_level("gpu_mhz"), p.device.knob_level("emc_mhz")) == (930.75, 665.6)  # back
    assert switch.switches == 1
    want = p.device.model.phase_cost(Levels(930.75, 665.6), Levels(612.0, 3199.0), [100, 100], 3).batch_cost()
    time_factor, energy_factor = twin_factors()
    assert served.energy_j == pytest.approx(want.energy_j * energy_factor, rel=1e-9)
    assert served.end_s - served.start_s == pytest.approx(want.service_s * time_factor, rel=1e-9)
    idle_from_s, idle_from_j = p.clock.now_s(), p.device.energy_j()
    p.clock.sleep(2.0)  # between batches the board idles at the prefill levels
    idle_w = p.device.model.idle_power_w(930.75, emc_mhz=665.6)
    assert p.device.energy_j() - idle_from_j == pytest.approx(idle_w * (p.clock.now_s() - idle_from_s), rel=1e-9)


def test_a_replayed_profile_has_no_per_phase_costs(tmp_path):
    path = tmp_path / "profile.csv"
    rows = [ProfileRow(f, b, 1.0 + b / f, 10.0) for f in (612.0, 930.75) for b in (1, 4)]
    write_profile(path, {"device": "orin", "output_tokens": 70, "idle_power_w": 5.0}, rows)
    p = open_sim("sim", profile=str(path), seed=SEED)
    with pytest.raises(ConfigError, match="replayed profile has no per-phase costs"):
        p.engine.generate(batch(), on_decode=lambda: None)
    assert p.engine.generate(batch())[0].output_tokens == 70  # without the hook it replays as before
