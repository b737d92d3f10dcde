"""The real engines behind the server: hf:tiny in process, and openai:URL as a gateway to another server."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import json
import threading

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.sse import format_sse_event

from tests.server.conftest import openai


@pytest.fixture(scope="module")
def hf_server():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.server.conftest import start_server

    srv = start_server("--device", "cpu", "--engine", "hf:tiny", "--batch", "2", "--max-wait-s", "0.2")
    yield srv
    srv.stop()


def test_hf_tiny_answers_completions_chat_and_streams(hf_server):
    client = hf_server.client()
    assert [m.id for m in client.models.list()] == ["tiny"]
    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        done = list(
            pool.map(lambda i: client.completions.create(model="tiny", prompt=f"hello {i}", max_tokens=6), range(4))
        )
    for r in done:
        assert 1 <= r.usage.completion_tokens <= 6 and r.usage.prompt_tokens >= 2
        assert r.usage.model_extra["energy_j"] is None  # the cpu device has no meter: missing, not 0
    chat = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert chat.choices[0].message.role == "assistant" and chat.usage.completion_tokens <= 5
    stream = client.completions.create(model="tiny", prompt="stream me", max_tokens=5, stream=True)
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_hf_tiny_refuses_a_prompt_over_its_2048_token_context(hf_server):
    with pytest.raises(openai.BadRequestError) as info:
        hf_server.client().completions.create(model="tiny", prompt="lorem ipsum dolor " * 1500, max_tokens=4)
    assert info.value.body["code"] == "context_length_exceeded"
    assert "2048" in info.value.body["message"]


class Upstream:
    """An OpenAI-compatible server of our own on loopback: echoes prompts, counts requests in flight."""

    def __init__(self) -> None:
        self.in_flight = self.max_in_flight = self.total = 0
        self.lock = threading.Lock()
        app = FastAPI()

        @app.post("/v1/completions")
        async def completions(request: Request):
            body = await request.json()
            with self.lock:
                self.total += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0.05)
            finally:
                with self.lock:
                    self.in_flight -= 1
            words = f"echo {body['prompt']}".split()[: body["max_tokens"]]
            if not body.get("stream"):
                return JSONResponse(
                    {
                        "choices": [{"text": " ".join(words), "index": 0, "finish_reason": "stop"}],
                        "usage": {"completion_tokens": len(words)},
                    }
                )

            async def events():
                for i, word in enumerate(words):
                    yield format_sse_event(data_str=json.dumps({"choices": [{"text": (" " if i else "") + word}]}))
                yield format_sse_event(data_str="[DONE]")

            return StreamingResponse(events(), media_type="text/event-stream")

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Upstream:
        self.thread.start()
        while not (self.server.started and self.server.servers):
            threading.Event().wait(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join()


def test_gateway_releases_requests_b_at_a_time_and_passes_answers_back(serve):
    with Upstream() as upstream:
        srv = serve(
            "--device",
            "cpu",
            "--engine",
            f"openai:http://127.0.0.1:{upstream.port}",
            "--batch",
            "3",
            "--max-wait-s",
            "0.2",
            "--model-name",
            "upstream-model",
        )
        client = srv.client()
        with cf.ThreadPoolExecutor(max_workers=12) as pool:
            texts = list(
                pool.map(
                    lambda i: (
                        client.completions.create(model="upstream-model", prompt=f"g{i} q", max_tokens=8)
                        .choices[0]
                        .text
                    ),
                    range(24),
                )
            )
        assert texts == [f"echo g{i} q" for i in range(24)]
        assert upstream.total == 24
        assert upstream.max_in_flight <= 3  # never more than one batch upstream at a time
        chat = client.chat.completions.create(
            model="upstream-model", messages=[{"role": "user", "content": "yo"}], max_tokens=8
        )
        assert chat.choices[0].message.content == "echo user: yo assistant:"
        srv.stop()
