"""Streaming end to end: real `edpilot serve` processes on loopback, read by the official openai client."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx
import pytest

from edpilot.runlog import read_run_log
from edpilot.server import protocol as p
from edpilot.server.worker import Answer, Pending
from edpilot.sim import open_sim
from edpilot.workload import Request
from tests.server.conftest import ServerProcess

MAX_TOKENS = 120
FREQ_MHZ = 930.75


def _stream(srv: ServerProcess, prompt: str = "one two three", max_tokens: int = MAX_TOKENS) -> tuple[list, str]:
    """(arrival time of each content chunk, wall s from the request), and the streamed text."""
    times, text = [], ""
    start = time.monotonic()
    stream = srv.client().completions.create(model="llama-3.2-1b", prompt=prompt, max_tokens=max_tokens, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].text:
            times.append(time.monotonic() - start)
            text += chunk.choices[0].text
    return times, text


def _decode_s(max_tokens: int) -> float:
    """The modelled time from the first token to the last, at FREQ_MHZ (simulated s)."""
    cost = open_sim("sim:orin-agx-32gb").model.expected_cost(FREQ_MHZ, [4], max_tokens)
    return cost.service_s - cost.ttft_s


@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_the_first_chunk_comes_long_before_the_last_token_is_made(serve, batching: str) -> None:
    srv = serve("--device", "sim", "--freq", str(FREQ_MHZ), "--batch", "1", "--batching", batching)
    times, text = _stream(srv)
    assert text == " ".join(["one", "two", "three"] * 40)
    assert len(times) == MAX_TOKENS  # one chunk per decode step
    # Sent whole at the end, the chunks would arrive within milliseconds of each other; streamed, they span the
    # decode (sim-speed 1: the simulated seconds are wall seconds).
    assert times[-1] - times[0] >= 0.5 * _decode_s(MAX_TOKENS)
    metrics = httpx.get(f"{srv.url}/metrics").text
    assert "edpilot_time_to_first_token_seconds_count 1.0" in metrics
    assert f"edpilot_inter_token_latency_seconds_count {MAX_TOKENS - 1}.0" in metrics


def test_a_lone_request_does_not_wait_for_company_under_continuous_batching(serve) -> None:
    srv = serve("--device", "sim", "--freq", str(FREQ_MHZ), "--batch", "8", "--batching", "continuous")
    times, _ = _stream(srv, max_tokens=20)
    # Static batching at batch 8 would hold it --max-wait-s (5 s) for seven more requests.
    assert times[0] < 2.5


def test_ttft_and_inter_token_percentiles_reach_the_run_log(serve, tmp_path) -> None:
    log = tmp_path / "run.jsonl"
    srv = serve(
        "--device", "sim", "--freq", str(FREQ_MHZ), "--batch", "2", "--batching", "continuous",
        "--requests-per-round", "3", "--output", str(log),
    )  # fmt: skip
    for _ in range(3):
        _stream(srv, max_tokens=30)
    assert srv.stop() in (0, 128 + signal.SIGTERM)
    rounds = read_run_log(log).rounds
    assert len(rounds) == 1
    obs = rounds[0].obs
    assert obs.requests == 3 and 0 < obs.p50_ttft_s <= obs.p95_ttft_s < obs.p95_latency_s
    assert 0 < obs.p50_itl_s <= obs.p95_itl_s < obs.p50_ttft_s


@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_the_gateway_forwards_upstream_chunks_as_they_arrive(serve, batching: str) -> None:
    upstream = serve("--device", "sim", "--freq", str(FREQ_MHZ), "--batch", "4", "--batching", "continuous")
    gateway = serve(
        "--device", "cpu", "--engine", f"openai:{upstream.url}", "--batch", "1", "--batching", batching,
        "--model-name", "llama-3.2-1b",
    )  # fmt: skip
    times, text = _stream(gateway)
    assert text == " ".join(["one", "two", "three"] * 40)
    assert len(times) >= 10  # chunks that reach the gateway together may travel on as one (more under load)
    assert times[-1] - times[0] >= 0.5 * _decode_s(MAX_TOKENS)


def _counting_wakes(loop: asyncio.AbstractEventLoop) -> list[int]:
    """Count the loop's cross-thread wake-ups (`call_soon_threadsafe`) in the one-element list returned."""
    wakes = [0]
    schedule = loop.call_soon_threadsafe

    def counted(*args: object) -> object:
        wakes[0] += 1
        return schedule(*args)  # type: ignore[arg-type]

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
    return wakes


def test_pieces_wake_a_waiting_stream_once_for_all_that_arrive_before_the_loop_runs() -> None:
    async def run() -> tuple[list[list[str] | None], int]:
        loop = asyncio.get_running_loop()
        pending = Pending(Request(0, 0.0, "p", 1, 4), loop.create_future())
        wakes = _counting_wakes(loop)

        def engine(*texts: str) -> None:
            thread = threading.Thread(target=lambda: [pending.pieces.put_threadsafe(t) for t in texts])
            thread.start()
            thread.join()  # the pieces arrive while the loop is busy here

        waiting = asyncio.ensure_future(pending.pieces.take())
        await asyncio.sleep(0)  # the stream waits
        engine("a", " b", " c")
        out = [await waiting]
        engine(" d")  # nobody waits (an answer sent whole, or a stream busy writing): no wake-up
        out.append(await pending.pieces.take())
        waiting = asyncio.ensure_future(pending.pieces.take())
        await asyncio.sleep(0)
        pending.finish(Answer("a b c d", 4, None, 0.0, None))
        out.append(await waiting)
        return out, wakes[0]

    taken, wakes = asyncio.run(run())
    assert taken == [["a", " b", " c"], [" d"], None]
    assert wakes == 1  # one for the first three pieces; " d" was taken without one; the end is on the loop


def test_pieces_put_on_the_loops_own_thread_wake_the_stream_without_a_threadsafe_call() -> None:
    async def run() -> tuple[list[str] | None, int]:
        loop = asyncio.get_running_loop()
        pending = Pending(Request(0, 0.0, "p", 1, 4), loop.create_future())
        wakes = _counting_wakes(loop)
        waiting = asyncio.ensure_future(pending.pieces.take())
        await asyncio.sleep(0)
        pending.pieces.put_threadsafe("a")  # a gateway streaming on the server's loop hands text on here
        return await asyncio.wait_for(waiting, 5), wakes[0]

    taken, wakes = asyncio.run(run())
    assert taken == ["a"] and wakes == 0


@pytest.mark.parametrize("chat", [False, True])
def test_an_answers_events_are_its_chunks_as_json_with_only_the_piece_encoded_per_event(chat: bool) -> None:
    events = p.ChunkEvents(rid="cmpl-1", model='odd "model" \x00piece\x00', chat=chat)
    texts = ["plain", ' quote " and \\ backslash', "line\nbreak", "é ü 😀", "\x00piece\x00", "\ud800", ""]
    whole = events.texts(texts)
    assert whole == b"".join(events.event(events.chunk(text=text)) for text in texts)
    assert whole.endswith(b"\n\n") and whole.count(b"\n\n") == len(texts)  # one event per piece
    sent = [json.loads(event.removeprefix(b"data: ")) for event in whole.split(b"\n\n")[:-1]]
    for text, chunk in zip(texts, sent):
        assert chunk == p.chunk(rid="cmpl-1", model=events.model, chat=chat, text=text, created=events.created)
        assert (chunk["choices"][0]["delta"]["content"] if chat else chunk["choices"][0]["text"]) == text


def _dropped(srv: ServerProcess) -> str:
    """Its /metrics, once it has dropped a request (at most 60 s from now)."""
    deadline = time.monotonic() + 60
    while "edpilot_dropped_requests_total 1.0" not in (metrics := httpx.get(f"{srv.url}/metrics").text):
        assert time.monotonic() < deadline, "the request was never dropped"
        time.sleep(0.05)
    return metrics


@pytest.mark.parametrize("through", ["direct", "gateway"])
def test_a_client_that_goes_away_mid_stream_has_its_request_dropped_at_once(serve, through: str) -> None:
    srv = upstream = serve("--device", "sim", "--freq", str(FREQ_MHZ), "--batch", "1", "--batching", "continuous")
    if through == "gateway":
        srv = serve(
            "--device", "cpu", "--engine", f"openai:{upstream.url}", "--batch", "1", "--batching", "continuous",
            "--model-name", "llama-3.2-1b",
        )  # fmt: skip
    body = {"model": "llama-3.2-1b", "prompt": "one two three", "max_tokens": 4000, "stream": True}
    with httpx.stream("POST", f"{srv.url}/v1/completions", json=body, timeout=60) as resp:
        lines = resp.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))  # streaming has begun
    # 4000 tokens take minutes at sim speed 1; the request ends as soon as the server sees the client gone, and a
    # gateway's upstream request with it (the upstream sees the gateway go away).
    assert 'code="200"' not in _dropped(srv)  # never counted as answered
    assert 'code="200"' not in _dropped(upstream)
