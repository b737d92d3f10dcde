"""The openai engine against a small OpenAI-compatible streaming server on loopback (HTTP/1.1, keep-alive).

The prompt tells the server how to misbehave: fail, trickle, send JSON of the wrong shape, end early, hang.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edpilot.engine import EngineOptions, open_engine
from edpilot.engine.openai import OpenAIEngine
from edpilot.errors import ConfigError, EngineError
from edpilot.workload import Request

TOKEN_DELAY_S = 0.01
WRONG_SHAPES = {
    "shape-list": "[1, 2]",
    "shape-choices": '{"choices": "x"}',
    "shape-text": '{"choices": [{"text": 5}]}',
    "shape-json": "not json",
    "shape-usage": '{"choices": [], "usage": {"completion_tokens": "many"}}',
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        if self.server.models is None:
            self._send(404, b"not found")
        else:
            self._send(200, json.dumps({"data": [{"id": m} for m in self.server.models]}).encode())

    def _send(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes):
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, obj):
        self._chunk(f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode())

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((body, self.client_address[1]))
        prompt, n = body["prompt"], body["max_tokens"]
        if prompt == "fail":
            return self._send(500, b"boom")
        if prompt == "whole-wrong":
            return self._send(200, b'{"choices": {"text": "x"}}', "application/json")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.server.streaming.set()
        if prompt in ("trickle", "hang"):
            for _ in range(2000):  # 20 s of keep-alive comments (trickle) or silence (hang), then a normal answer
                time.sleep(0.01)
                if prompt == "trickle":
                    self._chunk(b": ping\n")
        if prompt in WRONG_SHAPES:
            self._event({"choices": [{"text": " ok", "index": 0}]})
            self._event(WRONG_SHAPES[prompt])
        per_chunk = 2 if prompt == "pairs" else 1
        for i in range(0, n, per_chunk):
            time.sleep(TOKEN_DELAY_S)
            last = i + per_chunk >= n
            choice = {"text": "".join(f" t{j}" for j in range(i, min(n, i + per_chunk))), "index": 0}
            if last and prompt != "early-end":
                choice["finish_reason"] = "stop" if prompt == "stop" else "length"
            self._event({"choices": [choice]})
        if prompt == "early-end":
            return self._chunk(b"")
        if prompt == "usage" and body.get("stream_options", {}).get("include_usage"):
            self._event({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3 * n}})
        self._event("[DONE]")
        self._chunk(b"")


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.seen, srv.models, srv.streaming = [], ["served-model"], threading.Event()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def make():
    """OpenAIEngine(...), closed when the test ends (its connection pool with it)."""
    made: list[OpenAIEngine] = []

    def build(*args, **kwargs) -> OpenAIEngine:
        made.append(OpenAIEngine(*args, **kwargs))
        return made[-1]

    yield build
    for engine in made:
        engine.close()


def url(server, suffix=""):
    return f"http://127.0.0.1:{server.server_port}{suffix}"


def req(i, prompt="hello", max_new=5):
    return Request(i, 0.0, prompt, 2, max_new)


def test_streams_a_batch_concurrently_with_the_listed_model(server, make):
    engine = make(url(server))
    out = engine.generate([req(i, max_new=10) for i in range(6)])
    assert [c.text for c in out] == ["".join(f" t{i}" for i in range(10))] * 6
    assert all(c.output_tokens == 10 and c.error is None for c in out)
    assert all(c.ttft_s is not None and c.ttft_s > 0 for c in out)
    first = server.seen[0][0]
    assert first["stream"] is True and first["ignore_eos"] is True and first["temperature"] == 0
    assert first["stream_options"] == {"include_usage": True}
    assert {body["model"] for body, _ in server.seen} == {"served-model"}
    info = engine.describe()
    assert info["model"] == "served-model" and info["model_source"] == "server's /v1/models"
    assert info["backend"] == "openai" and info["url"] == url(server, "/v1")


def test_model_name_option_and_fallback(server, make):
    make(url(server, "/v1"), model="my-model").generate([req(0)])
    server.models = None  # /v1/models answers 404
    fallback = make(url(server))
    fallback.generate([req(1)])
    assert [body["model"] for body, _ in server.seen] == ["my-model", "default"]
    assert fallback.describe()["model_source"].startswith("fallback")


def test_connections_are_reused_between_batches(server, make):
    engine = make(url(server))
    for i in range(4):
        assert engine.generate([req(i)])[0].error is None
    assert len({port for _, port in server.seen}) == 1


def test_reader_threads_are_reused_between_batches_and_requests_are_not_logged_one_by_one(server, caplog, make):
    engine = make(url(server))
    readers: list[threading.Thread] = []
    with caplog.at_level("INFO"):
        for i in range(5):
            engine.generate([req(i)], lambda index, text: readers.append(threading.current_thread()))
    assert len(readers) == 25 and len(set(readers)) == 1  # one reader thread served all five batches
    assert readers[0] is not threading.current_thread()
    assert not [r for r in caplog.records if r.name.startswith("httpx")]  # no "HTTP Request: POST ..." per request


def test_tokens_are_counted_as_tokens_not_chunks(server, make):
    engine = make(url(server))
    usage, pairs, stop = engine.generate([req(0, "usage", 4), req(1, "pairs", 8), req(2, "stop", 3)])
    assert usage.output_tokens == 12  # the server's usage (3 per chunk here), not the 4 chunks
    assert pairs.output_tokens == 8 and pairs.text == "".join(f" t{i}" for i in range(8))  # 4 chunks, length stop
    assert stop.output_tokens == 3  # no usage, stopped early: chunks, the only count left
    assert all(c.error is None for c in (usage, pairs, stop))


def test_errors_are_per_request(server, make):
    out = make(url(server, "/v1")).generate([req(0), req(1, "fail"), req(2, "early-end")])
    assert out[0].error is None and out[0].output_tokens == 5
    assert out[1].error == "HTTP 500: boom" and out[1].output_tokens == 0
    assert "ended before [DONE]" in out[2].error


@pytest.mark.parametrize("prompt", [*WRONG_SHAPES, "whole-wrong"])
def test_json_of_the_wrong_shape_fails_that_request_clearly(server, prompt, make):
    ok, bad = make(url(server)).generate([req(0), req(1, prompt)])
    assert ok.error is None
    assert bad.error is not None and ("wrong shape" in bad.error or "invalid JSON" in bad.error)


@pytest.mark.parametrize("prompt", ["trickle", "hang"])
def test_the_request_deadline_bounds_a_server_that_trickles_or_hangs(server, prompt, make):
    out = make(url(server), request_timeout_s=0.5).generate([req(0), req(1, prompt)])
    assert out[0].error is None
    assert "0.5 s request deadline" in out[1].error  # the server would answer normally after 20 s


def test_close_cancels_in_flight_requests(server, make):
    engine = make(url(server))
    result = []
    worker = threading.Thread(target=lambda: result.extend(engine.generate([req(0, "trickle")])))
    worker.start()
    assert server.streaming.wait(10)
    engine.close()
    worker.join(10)
    assert not worker.is_alive()
    assert result[0].error == "cancelled: the engine was closed"  # not the answer it would send after 20 s
    with pytest.raises(EngineError, match="closed"):
        engine.generate([req(1)])
    engine.close()  # idempotent


def test_with_a_text_sink_text_goes_out_as_it_arrives_and_a_step_ends_only_when_requests_finish(server, make):
    engine = make(url(server))
    got: list[tuple[int, str]] = []
    engine.send_text_to(lambda rid, text: got.append((rid, text)))
    engine.add(req(0, max_new=5))
    engine.add(req(1, "pairs", 8))
    steps = []
    while engine.running():
        steps.append(engine.step())
    assert all(not step.text for step in steps)  # no step per chunk: the text went to the sink
    assert {rid for step in steps for rid in step.finished} == {0, 1} and len(steps) <= 2
    assert [t for rid, t in got if rid == 0] == [f" t{i}" for i in range(5)]  # chunk by chunk, in order
    assert "".join(t for rid, t in got if rid == 1) == "".join(f" t{i}" for i in range(8))
    finished = {rid: c for step in steps for rid, c in step.finished.items()}
    assert finished[1].text == "".join(f" t{i}" for i in range(8)) and finished[1].output_tokens == 8


def test_a_shared_loop_runs_the_streams_and_leaving_it_closes_the_pool(server, make):
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    engine = make(url(server))
    engine.share_loop(loop)
    threads: list[threading.Thread] = []
    out = engine.generate([req(0), req(1)], lambda index, text: threads.append(threading.current_thread()))
    assert [c.error for c in out] == [None, None] and set(threads) == {runner}  # read on the shared loop
    asyncio.run_coroutine_threadsafe(engine.leave_loop(), loop).result(5)
    threads.clear()
    assert engine.generate([req(2)], lambda index, text: threads.append(threading.current_thread()))[0].error is None
    assert threads and runner not in set(threads)  # back on a loop of the engine's own
    ports = [port for _, port in server.seen]
    assert ports[2] not in ports[:2]  # the shared loop's connections were closed when it left
    loop.call_soon_threadsafe(loop.stop)
    runner.join(5)


def test_unreachable_server_is_an_error_not_a_crash(make):
    engine = make("http://127.0.0.1:9", request_timeout_s=2)
    out = engine.generate([req(0)])
    assert out[0].error is not None and "Connect" in out[0].error
    assert engine.describe()["model"] == "default"


def test_specs_and_options():
    with pytest.raises(ConfigError, match="http"):
        OpenAIEngine("ftp://x")
    with pytest.raises(ConfigError, match="needs a URL"):
        open_engine("openai")
    with pytest.raises(ConfigError, match="request-timeout"):
        EngineOptions(request_timeout_s=float("nan"))
    with pytest.raises(ConfigError, match="request-timeout"):
        EngineOptions(request_timeout_s=0)
    engine = open_engine("openai:127.0.0.1:8080", EngineOptions(model_name="m", request_timeout_s=7))
    assert engine.describe()["model"] == "m" and engine.describe()["request_timeout_s"] == 7
    assert engine.api_url == "http://127.0.0.1:8080/v1"


def feed_all(pieces: list[bytes]) -> list[str]:
    from edpilot.engine.openai_wire import SseData

    events = SseData()
    return [data for piece in pieces for data in events.feed(piece)] + events.end()


def test_sse_data_lines_are_found_across_reads_whatever_the_line_ending() -> None:
    body = [b'data: {"a"', b": 1}\r", b"\n\r\n: ping\n\nevent: x\n", b"data: [DONE]\r\rdata: \xff", b"!"]
    assert feed_all(body) == ['{"a": 1}', "[DONE]", "\ufffd!"]  # the last line needs no ending
    assert feed_all([b"data:a\ndata:  b \n", b"", b"\n"]) == ["a", "b"]


def test_tune_closes_the_engine_it_opened_also_when_the_run_fails(tmp_path) -> None:
    import subprocess
    import sys

    args = ["tune", "--device", "cpu", "--objective", "latency", "--budget", "2", "--request-timeout", "5"]
    args += ["--arrival-rate", "1000"]  # the requests fail at once; their arrivals need not be paced a second apart
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "edpilot",
            *args,
            "--output",
            str(tmp_path / "r"),
            "--engine",
            "openai:http://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "the baseline round failed" in run.stderr
    assert "Unclosed" not in run.stderr and "Traceback" not in run.stderr  # its connection pool was closed
