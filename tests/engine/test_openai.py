"""The openai engine against a minimal OpenAI-compatible streaming server on loopback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edpilot.engine.openai import OpenAIEngine
from edpilot.errors import ConfigError
from edpilot.workload import Request

TOKEN_DELAY_S = 0.02


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(body)
        prompt = body["prompt"]
        if prompt == "fail":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        if prompt == "hang":
            time.sleep(1.0)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(body["max_tokens"]):
            time.sleep(TOKEN_DELAY_S)
            chunk = {"choices": [{"text": f" t{i}", "index": 0}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.seen = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def req(i, prompt="hello", max_new=5):
    return Request(i, 0.0, prompt, 2, max_new)


def test_streams_a_batch_concurrently(server):
    engine = OpenAIEngine(f"http://127.0.0.1:{server.server_port}")
    t0 = time.monotonic()
    out = engine.generate([req(i, max_new=10) for i in range(6)])
    elapsed = time.monotonic() - t0
    assert [c.text for c in out] == ["".join(f" t{i}" for i in range(10))] * 6
    assert all(c.output_tokens == 10 and c.error is None for c in out)
    assert all(TOKEN_DELAY_S * 0.5 < c.ttft_s < elapsed for c in out)
    assert elapsed < 6 * 10 * TOKEN_DELAY_S / 2  # concurrent, not one after another
    assert server.seen[0]["stream"] is True and server.seen[0]["ignore_eos"] is True


def test_errors_and_timeouts_are_per_request(server):
    engine = OpenAIEngine(f"http://127.0.0.1:{server.server_port}/v1", timeout_s=0.3)
    out = engine.generate([req(0), req(1, "fail"), req(2, "hang")])
    assert out[0].error is None and out[0].output_tokens == 5
    assert out[1].error.startswith("HTTP 500")
    assert "timed out" in out[2].error.lower() or "timeout" in out[2].error.lower()


def test_unreachable_server_is_an_error_not_a_crash():
    out = OpenAIEngine("http://127.0.0.1:9", timeout_s=0.5).generate([req(0)])
    assert out[0].error is not None


def test_bad_url():
    with pytest.raises(ConfigError, match="http"):
        OpenAIEngine("ftp://x")
