"""`edpilot serve --engine sim`: the OpenAI API, errors, concurrency and metrics, through the official client."""

from __future__ import annotations

import concurrent.futures as cf
import json

import httpx
import pytest

from tests.server.conftest import openai, start_server

MODEL = "llama-3.2-1b"


@pytest.fixture(scope="module")
def server():
    srv = start_server("--device", "sim", "--freq", "816", "--batch", "4", "--max-wait-s", "0.5", "--sim-speed", "50")
    yield srv
    srv.stop()


def test_lists_its_model(server):
    assert [m.id for m in server.client().models.list()] == [MODEL]


def test_completion_echoes_its_prompt_with_usage_and_energy(server):
    r = server.client().completions.create(model=MODEL, prompt="alpha beta gamma", max_tokens=7)
    assert r.object == "text_completion" and r.model == MODEL
    assert r.choices[0].text == "alpha beta gamma alpha beta gamma alpha"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 7 and r.usage.total_tokens == r.usage.prompt_tokens + 7
    assert r.usage.model_extra["energy_j"] > 0


def test_chat_completion(server):
    r = server.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "tell me a story"}], max_tokens=5
    )
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "user: tell me a story"
    assert r.usage.completion_tokens == 5


@pytest.mark.parametrize("chat", [False, True])
def test_streaming_joins_to_the_whole_answer_and_ends_with_usage(server, chat):
    client = server.client()
    options = {"include_usage": True}
    if chat:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "s1 s2"}],
            max_tokens=6,
            stream=True,
            stream_options=options,
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "user: s1 s2 assistant: user: s1"
    else:
        stream = client.completions.create(
            model=MODEL, prompt="s1 s2", max_tokens=6, stream=True, stream_options=options
        )
        chunks = list(stream)
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        assert text == "s1 s2 s1 s2 s1 s2"
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons == ["length"]
    assert chunks[-1].usage.completion_tokens == 6 and chunks[-1].usage.model_extra["energy_j"] > 0


def test_concurrent_requests_each_get_their_own_answer(server):
    client = server.client()

    def one(i: int) -> tuple[int, str]:
        r = client.completions.create(model=MODEL, prompt=f"id-{i} ping", max_tokens=4)
        return i, r.choices[0].text

    with cf.ThreadPoolExecutor(max_workers=32) as pool:
        answers = dict(pool.map(one, range(64)))
    assert sorted(answers) == list(range(64))
    assert all(text == f"id-{i} ping id-{i} ping" for i, text in answers.items())


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        (dict(model="gpt-4", prompt="x"), openai.NotFoundError, "model"),
        (dict(model=MODEL, prompt="x", max_tokens=0), openai.BadRequestError, "max_tokens"),
        (dict(model=MODEL, prompt="x", max_tokens=8193), openai.BadRequestError, "max_tokens"),
        (dict(model=MODEL, prompt="x", n=2), openai.BadRequestError, "n"),
        (dict(model=MODEL, prompt=["a", "b"]), openai.BadRequestError, "prompt"),
        (dict(model=MODEL, prompt="   "), openai.BadRequestError, "prompt"),
        (dict(model=MODEL, prompt="x", extra_body={"max_tokens": "5"}), openai.UnprocessableEntityError, "max_tokens"),
        (dict(model=MODEL, prompt="x", extra_body={"stream": "yes"}), openai.UnprocessableEntityError, "stream"),
    ],
)
def test_bad_requests_get_openai_errors(server, kwargs, error, param):
    with pytest.raises(error) as info:
        server.client().completions.create(**kwargs)
    assert info.value.body["param"] == param
    assert info.value.body["message"]


def test_prompt_over_the_context_is_refused(server):
    prompt = "word " * 140_000  # ~175k tokens: over Llama-3.2-1B's 131072
    with pytest.raises(openai.BadRequestError) as info:
        server.client().completions.create(model=MODEL, prompt=prompt, max_tokens=4)
    assert info.value.body["code"] == "context_length_exceeded"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/completions", b"{not json", 400),
        ("/v1/completions", b"[1, 2]", 400),
        ("/v1/completions", json.dumps({"model": MODEL}).encode(), 422),
        ("/v1/chat/completions", json.dumps({"model": MODEL, "messages": []}).encode(), 422),
        ("/v1/chat/completions", json.dumps({"model": MODEL, "messages": [{"role": "x"}]}).encode(), 422),
        ("/v1/nothing", b"{}", 404),
    ],
)
def test_raw_bad_bodies_never_500(server, path, body, status):
    r = httpx.post(server.url + path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_health_and_metrics(server):
    server.client().completions.create(model=MODEL, prompt="m1", max_tokens=3)
    health = httpx.get(server.url + "/healthz").json()
    assert health == {
        "status": "ok",
        "queue": 0,
        "freq_mhz": 816,
        "batch_size": 4,
        "overloaded": False,
        "overload": None,
        "constraints_met": {},
    }
    text = httpx.get(server.url + "/metrics").text
    metrics = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"}
    assert metrics["edpilot_gpu_frequency_mhz"] == 816
    assert metrics["edpilot_batch_size"] == 4
    assert metrics['edpilot_requests_total{code="200",endpoint="/v1/completions"}'] >= 1
    assert metrics["edpilot_completion_tokens_total"] >= 3
    assert metrics["edpilot_energy_joules_total"] > 0
    assert "edpilot_queue_depth" in metrics and "edpilot_retunes_total" in metrics


def test_full_queue_answers_429_with_retry_after(serve):
    srv = serve(
        "--batching", "static",
        "--device", "sim", "--freq", "816", "--batch", "8", "--max-wait-s", "1000", "--max-queue", "2"
    )  # fmt: skip
    client = srv.client()
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        waiting = [pool.submit(client.completions.create, model=MODEL, prompt=f"q{i}", max_tokens=2) for i in range(2)]
        _wait_for(lambda: httpx.get(srv.url + "/healthz").json()["queue"] == 2)
        r = httpx.post(srv.url + "/v1/completions", json={"model": MODEL, "prompt": "one too many"})
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["type"] == "rate_limit_error"
        srv.stop()
        for f in waiting:
            with pytest.raises(openai.APIStatusError) as info:
                f.result()
            assert info.value.status_code == 503


def test_api_key_is_required_when_given(serve):
    srv = serve("--device", "sim", "--batch", "1", "--freq", "930.75", "--api-key", "s3cret", "--sim-speed", "50")
    with pytest.raises(openai.AuthenticationError):
        srv.client(api_key="wrong").completions.create(model=MODEL, prompt="x", max_tokens=1)
    r = srv.client(api_key="s3cret").completions.create(model=MODEL, prompt="ok", max_tokens=1)
    assert r.choices[0].text == "ok"
    assert httpx.get(srv.url + "/healthz").status_code == 200
    assert httpx.get(srv.url + "/metrics").status_code == 401


def _wait_for(predicate, timeout_s: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def test_a_client_that_goes_away_is_dropped_and_the_batch_goes_on(serve):
    srv = serve(
        "--batching", "static",
        "--device", "sim", "--freq", "816", "--batch", "4", "--max-wait-s", "100000", "--sim-speed", "50"
    )  # fmt: skip
    with pytest.raises(httpx.ReadTimeout):  # the client gives up while its request waits for company
        httpx.post(srv.url + "/v1/completions", json={"model": MODEL, "prompt": "gone", "max_tokens": 2}, timeout=0.5)
    _wait_for(lambda: httpx.get(srv.url + "/healthz").json()["queue"] == 1)
    client = srv.client()
    with cf.ThreadPoolExecutor(max_workers=3) as pool:
        texts = list(
            pool.map(
                lambda i: client.completions.create(model=MODEL, prompt=f"stay{i}", max_tokens=2).choices[0].text,
                range(3),
            )
        )
    assert texts == ["stay0 stay0", "stay1 stay1", "stay2 stay2"]  # released with the gone one, which was dropped
    metrics = httpx.get(srv.url + "/metrics").text
    assert "edpilot_dropped_requests_total 1.0" in metrics
    assert "edpilot_batches_total 1.0" in metrics
