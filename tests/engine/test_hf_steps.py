"""Continuous batching in the hf engine: sequences join and leave at step boundaries, each decoding as it would alone.

The `tiny` preset's random weights (std 0.02) answer every prompt with the same token; the fixture redraws them at
std 0.3, so that outputs differ from prompt to prompt and from token to token, and a wrong position, mask or cache
row changes the text.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from edpilot.engine.base import SequenceEngine  # noqa: E402
from edpilot.engine.hf import HfEngine  # noqa: E402
from edpilot.workload import Request, builtin_prompts  # noqa: E402


@pytest.fixture(scope="module")
def engine() -> HfEngine:
    engine = HfEngine("tiny", device="cpu", seed=0)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in engine.model.parameters():
            p.normal_(0.0, 0.3)
    return engine


def _requests(n: int) -> list[Request]:
    prompts = builtin_prompts()
    return [Request(i, 0.0, prompts[i], 10, 5 + 3 * i) for i in range(n)]


def _run(engine: HfEngine, joins: dict[int, list[Request]], cancel: dict[int, int] | None = None):
    """Step until every sequence ends; `joins[k]` are added before step k, `cancel[k]` cancelled before it."""
    finished, pieces, steps_of, k = {}, {}, {}, 0
    while engine.running() or k <= max(joins):
        for r in joins.get(k, []):
            engine.add(r)
        if cancel and k in cancel:
            engine.cancel(cancel[k])
        step = engine.step()
        for rid, text in step.text.items():
            pieces.setdefault(rid, []).append(text)
            steps_of.setdefault(rid, []).append(k)
        finished.update(step.finished)
        k += 1
        assert k < 200
    return finished, pieces, steps_of


def test_the_hf_engine_has_the_step_interface(engine: HfEngine) -> None:
    assert isinstance(engine, SequenceEngine) and engine.running() == 0


def test_sequences_joining_and_leaving_decode_exactly_as_alone(engine: HfEngine) -> None:
    reqs = _requests(5)
    alone = [engine.generate([r])[0] for r in reqs]
    assert len({a.text for a in alone}) == 5  # the outputs differ, so a mixed-up row would show
    finished, pieces, steps_of = _run(engine, {0: reqs[:2], 2: [reqs[2]], 5: reqs[3:]})
    assert [finished[i].text for i in range(5)] == [a.text for a in alone]
    assert [finished[i].output_tokens for i in range(5)] == [5, 8, 11, 14, 17]
    for i, r in enumerate(reqs):
        assert "".join(pieces[i]) == finished[i].text  # streamed step by step, nothing lost or repeated
        assert steps_of[i][0] == {0: 0, 1: 0, 2: 2, 3: 5, 4: 5}[i]  # the first token comes from the join step
        assert steps_of[i][-1] <= steps_of[i][0] + r.max_new_tokens - 1  # one token a step
        c = finished[i]
        assert c.ttft_s is not None and c.last_token_s is not None and 0 < c.ttft_s < c.last_token_s
    assert engine.running() == 0


def test_a_longer_joiner_and_the_longest_leaving_move_only_their_rows(engine: HfEngine) -> None:
    long = " ".join(builtin_prompts()[:3])
    reqs = [
        Request(0, 0.0, "Why is the sky blue?", 6, 14),
        Request(1, 0.0, long, 60, 3),  # joins longer than the packed batch, leaves first: the longest row goes
        Request(2, 0.0, "Name a prime.", 4, 9),
    ]
    alone = [engine.generate([r])[0].text for r in reqs]
    assert len(set(alone)) == 3
    finished, _, steps_of = _run(engine, {0: [reqs[0]], 2: [reqs[1]], 3: [reqs[2]]})
    assert steps_of[1][-1] < steps_of[0][-1] and steps_of[1][-1] < steps_of[2][-1]  # the long one left mid-run
    assert [finished[i].text for i in range(3)] == alone
    assert engine.running() == 0


def test_a_cancelled_sequence_leaves_and_the_others_are_unchanged(engine: HfEngine) -> None:
    reqs = _requests(3)
    alone = [engine.generate([r])[0].text for r in reqs]
    finished, _, _ = _run(engine, {0: reqs}, cancel={3: 1})
    assert finished[1].error is not None and "cancelled" in finished[1].error
    assert [finished[0].text, finished[2].text] == [alone[0], alone[2]]
    assert engine.running() == 0


def test_tune_with_continuous_batching_on_the_hf_engine_end_to_end(tmp_path) -> None:
    log = tmp_path / "run.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "edpilot", "tune", "--device", "cpu", "--engine", "hf:tiny", "--batching",
         "continuous", "--batches", "1,2,4", "--budget", "2", "--requests-per-round", "6", "--arrival-rate", "20",
         "--output-tokens", "6", "--objective", "latency", "--output", str(log)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rounds = [json.loads(line) for line in log.read_text().splitlines() if '"round"' in line[:20]]
    # a round ends at the step that completes its 6th request (a step may end several); a probe is shorter
    assert len(rounds) == 3 and all(1 <= r["requests"] < 6 + 4 and r["steps"] >= 1 for r in rounds)
    answers = sum(r["requests"] for r in rounds)
    assert sum(r["steps"] for r in rounds) >= answers * 6 / 4  # 6 tokens each, at most 4 sequences a step
    assert {r["batch_size"] for r in rounds} <= {1, 2, 4}
    header = json.loads(log.read_text().splitlines()[0])
    assert header["extra"]["batching"] == "continuous" and header["engine"]["backend"] == "hf"


def test_serve_hf_with_continuous_batching_over_loopback() -> None:
    """A real `edpilot serve --engine hf:tiny --batching continuous` process: concurrent requests, each answered as
    it is answered alone, streamed a step at a time."""
    import concurrent.futures as cf

    pytest.importorskip("fastapi")
    from tests.server.conftest import start_server

    server = start_server("--device", "cpu", "--engine", "hf:tiny", "--batching", "continuous", "--batch", "3")
    try:
        client = server.client()
        prompts = [(f"tell me about {w}", 3 + i) for i, w in enumerate(["rivers", "clocks", "bread", "stars", "moss"])]

        def ask(item: tuple[str, int]) -> tuple[str, int]:
            r = client.completions.create(model="tiny", prompt=item[0], max_tokens=item[1])
            return r.choices[0].text, r.usage.completion_tokens

        alone = [ask(p) for p in prompts]
        with cf.ThreadPoolExecutor(max_workers=5) as pool:
            together = list(pool.map(ask, prompts))
        assert together == alone
        assert all(1 <= n <= p[1] for (_, n), p in zip(alone, prompts))
        chunks = list(client.completions.create(model="tiny", prompt="stream me", max_tokens=8, stream=True))
        pieces = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
        assert len(pieces) >= 2  # a step at a time, not the whole answer at its end
        assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    finally:
        assert server.stop() == 143, server.log
