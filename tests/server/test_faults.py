"""A server that fails loudly: each fault reproduced on a real `edpilot serve` process over loopback.

A clock write that fails mid-run, random paths against the metrics, bodies that are not valid Unicode or past
JSON's limits, slow clients at a low descriptor limit, stop signals, a full disk under --output, a device with
no clock, and the OpenAPI document.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from edpilot.runlog import read_run_log
from tests.hardware.fake_jetson import ORIN_LEVELS_HZ, build_tree
from tests.server.conftest import ServerProcess

MODEL = "llama-3.2-1b"
ORIGINAL = {"min_freq": str(ORIN_LEVELS_HZ[0]), "max_freq": str(ORIN_LEVELS_HZ[-1]), "governor": "nvhost_podgov"}
GUARD_S = 60.0  # a guard against a hang, never a measurement


def wait_for(predicate, timeout_s: float = GUARD_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def metric_lines(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}


def complete(url: str, prompt: str = "hi", max_tokens: int = 2, timeout_s: float = GUARD_S) -> int | str:
    """Status of one completion, or the name of the connection error (never a hang: the guard is GUARD_S)."""
    try:
        body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens}
        return httpx.post(url + "/v1/completions", json=body, timeout=timeout_s).status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


@contextlib.contextmanager
def unwritable(*paths: Path):
    """Files that even root cannot write: immutable (chattr +i) where the filesystem allows it, else symbolic
    links, which edpilot refuses to write through. Undone at the end."""
    chattr = shutil.which("chattr")
    immutable = chattr is not None and all(
        subprocess.run([chattr, "+i", str(p)], capture_output=True).returncode == 0 for p in paths
    )
    if not immutable:
        for path in paths:
            if chattr is not None:
                subprocess.run([chattr, "-i", str(path)], capture_output=True)
            target = path.with_name(f".{path.name}.real")
            os.replace(path, target)
            path.symlink_to(target.name)
    try:
        yield
    finally:
        for path in paths:
            if immutable:
                subprocess.run([chattr, "-i", str(path)], check=True)
            else:
                target = path.with_name(f".{path.name}.real")
                path.unlink()
                os.replace(target, path)


@pytest.fixture
def jetson(tmp_path):
    fake = build_tree(tmp_path / "root").start()
    env = {"EDPILOT_SYSFS_ROOT": str(fake.root), "EDPILOT_STATE_DIR": str(tmp_path / "state")}
    yield fake, env
    fake.stop()


def test_a_clock_write_that_fails_mid_run_answers_every_request_and_exits_non_zero(serve, jetson):
    fake, env = jetson
    srv: ServerProcess = serve(
        "--device", "jetson", "--engine", "sim", "--freqs", "all", "--batches", "1", "--strategy", "random",
        "--budget", "200", "--requests-per-round", "2", "--max-wait-s", "0.05", "--batching", "static", env=env,
    )  # fmt: skip
    assert [complete(srv.url) for _ in range(4)] == [200] * 4
    health: list[tuple[float, int, dict]] = []
    answers: list[tuple[float, int | str]] = []
    stop = threading.Event()

    def poll_health() -> None:
        while not stop.is_set():
            sent_s = time.monotonic()
            try:
                r = httpx.get(srv.url + "/healthz", timeout=GUARD_S)
            except httpx.TransportError:
                return
            health.append((sent_s, r.status_code, r.json()))

    with unwritable(fake.devfreq / "min_freq", fake.devfreq / "max_freq"):
        poller = threading.Thread(target=poll_health)
        poller.start()
        for i in range(40):  # the random search moves the clock every round (2 requests), which now fails
            code = complete(srv.url, f"p{i}")
            answers.append((time.monotonic(), code))  # when the answer came
            if code != 200:
                break
        for i in range(3):
            code = complete(srv.url, f"after{i}")
            answers.append((time.monotonic(), code))
        assert srv.proc.wait(timeout=GUARD_S) == 2
        stop.set()
        poller.join()
    codes = [code for _, code in answers]
    first_refused = next(i for i, code in enumerate(codes) if code != 200)
    # Refused or gone, never a hang, never a 200 later. Gone is a closed listener (ConnectError) or, for a
    # connection accepted just before it closed, the graceful shutdown closing it before its request arrived.
    assert set(codes[first_refused:]) <= {503, "ConnectError", "RemoteProtocolError"}
    refused_s = answers[first_refused][0]  # the first refusal had come back: health asked later is never ok
    assert all(code == 503 and body["status"] == "failed" for sent_s, code, body in health if sent_s > refused_s)
    assert all(body["status"] in ("ok", "failed") for _, _, body in health)
    log = srv.log
    assert re.search(r"ERROR .*the server failed: .*min_freq", log)  # the cause, named
    assert "edpilot: stopped; clocks NOT restored" in log
    assert "Traceback" not in log
    r = subprocess.run([sys.executable, "-m", "edpilot", "restore"], env={**os.environ, **env}, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert {name: fake.read(name) for name in ORIGINAL} == ORIGINAL


def test_unknown_paths_share_one_metrics_series_even_before_auth(serve):
    srv = serve("--device", "sim", "--freq", "816", "--batch", "1", "--api-key", "k")
    auth = {"Authorization": "Bearer k"}
    with httpx.Client() as client:
        codes = {client.get(f"{srv.url}/{uuid.uuid4().hex}/{i}").status_code for i in range(300)}
        assert codes == {404}
        assert client.get(srv.url + "/v1/completions").status_code == 405
        metrics = metric_lines(client.get(srv.url + "/metrics", headers=auth).text)
    series = {k: v for k, v in metrics.items() if k.startswith("edpilot_requests_total")}
    assert series == {
        'edpilot_requests_total{code="404",endpoint="unmatched"}': 300.0,
        'edpilot_requests_total{code="405",endpoint="/v1/completions"}': 1.0,
    }


@pytest.fixture(scope="module")
def sim_server():
    from tests.server.conftest import start_server

    srv = start_server(
        "--batching", "static",
        "--device", "sim", "--freq", "816", "--batch", "1", "--max-wait-s", "0", "--sim-speed", "50"
    )  # fmt: skip
    yield srv
    srv.stop()


def raw_exchange(url: str, bodies: list[bytes]) -> list[tuple[int, dict]]:
    """POST each body to /v1/completions in turn on ONE keep-alive connection; (status, JSON) of each answer."""
    host, port = url.removeprefix("http://").split(":")
    out = []
    with socket.create_connection((host, int(port)), timeout=GUARD_S) as sock, sock.makefile("rb") as reader:
        for body in bodies:
            head = (
                f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body)
            status = int(reader.readline().split()[1])
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            out.append((status, json.loads(reader.read(length))))
    return out


def test_invalid_unicode_and_huge_integers_are_400_before_anything_runs(sim_server):
    url = sim_server.url
    before = metric_lines(httpx.get(url + "/metrics").text)["edpilot_batches_total"]
    surrogate = b'{"model": "%s", "prompt": "\\ud800", "max_tokens": 2}' % MODEL.encode()
    huge = b'{"model": "%s", "prompt": "x", "max_tokens": 1%s}' % (MODEL.encode(), b"0" * 5000)
    fine = json.dumps({"model": MODEL, "prompt": "still here", "max_tokens": 4}).encode()
    answers = raw_exchange(url, [surrogate, huge, fine])  # one connection: neither bad body may reset it
    assert [status for status, _ in answers] == [400, 400, 200]
    assert "surrogate" in answers[0][1]["error"]["message"]
    assert "limit" in answers[1][1]["error"]["message"]
    assert answers[2][1]["choices"][0]["text"] == "still here still here"
    after = metric_lines(httpx.get(url + "/metrics").text)["edpilot_batches_total"]
    assert after == before + 1  # only the good request ran a batch


def test_openapi_describes_the_routes_and_their_error_shape(sim_server):
    doc = httpx.get(sim_server.url + "/openapi.json").json()
    post = doc["paths"]["/v1/completions"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CompletionBody"
    }
    schemas = doc["components"]["schemas"]
    assert schemas["CompletionBody"]["properties"]["model"]["enum"] == [MODEL]
    for status in ("400", "401", "404", "422", "429", "502", "503"):
        ref = post["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/ErrorResponse"
    assert set(schemas["ErrorDetail"]["properties"]) == {"message", "type", "param", "code"}
    assert {"/v1/chat/completions", "/v1/models", "/healthz", "/metrics"} <= set(doc["paths"])
    r = httpx.delete(sim_server.url + "/v1/chat/completions")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_a_device_without_a_clock_leaves_unmeasured_values_out_of_metrics(serve):
    srv = serve("--device", "cpu", "--engine", "sim", "--batch", "1", "--max-wait-s", "0", "--requests-per-round", "2")
    assert [complete(srv.url, f"c{i}") for i in range(4)] == [200] * 4
    metrics = metric_lines(httpx.get(srv.url + "/metrics").text)
    assert metrics["edpilot_rounds_total"] >= 1 and metrics["edpilot_batch_size"] == 1
    for absent in (
        "edpilot_gpu_frequency_mhz",
        "edpilot_observed_edp_joule_seconds",
        "edpilot_observed_energy_per_request_joules",
        "edpilot_energy_joules_total",
        "edpilot_estimated_arrival_rate_per_second",  # 4 arrivals: no estimate yet
    ):
        assert absent not in metrics


def test_slow_clients_at_a_low_descriptor_limit_do_not_lock_out_real_ones(serve):
    limit = 256  # the connection cap becomes 256 - 128 = 128

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    srv = serve("--device", "sim", "--freq", "816", "--batch", "1", "--max-wait-s", "0", "--sim-speed", "50",
                "--read-timeout-s", "3", preexec_fn=low_fd_limit)  # fmt: skip
    host, port = srv.url.removeprefix("http://").split(":")
    slow = []
    for _ in range(2 * limit):  # twice the descriptors the server may open, each sending half a header
        sock = socket.create_connection((host, int(port)), timeout=GUARD_S)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(sock)
    try:
        assert [complete(srv.url, f"real{i}") for i in range(5)] == [200] * 5  # served while the slow ones hang on
        for sock in slow:  # each slow one is cut: evicted by a newer connection, or at its read deadline
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1024) == b""
    finally:
        for sock in slow:
            sock.close()
    assert srv.stop() == 128 + signal.SIGTERM
    log = srv.log
    assert "Traceback" not in log
    # One line a minute, not one per client: connections closed, and (asyncio accepts a burst before the cap sees
    # it) the descriptors running out for a moment.
    assert log.count("closed") <= 2 and "over the cap of 128" in log
    assert log.count("Too many open files") <= 2


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_each_stop_signal_exits_128_plus_it_and_says_the_clocks_are_restored(serve, sig, code):
    srv = serve("--device", "sim", "--freq", "306", "--batch", "1", "--max-wait-s", "0", "--sim-speed", "50")
    assert complete(srv.url) == 200
    assert srv.stop(sig) == code
    said = [line for line in srv.log.splitlines() if line.startswith("edpilot: ")]
    assert said[1:] == [f"edpilot: stopped ({signal.Signals(sig).name}); clocks restored"]  # one line, no more
    assert "Traceback" not in srv.log


def test_a_second_sigint_while_stopping_is_one_line_and_the_batch_still_finishes(serve):
    srv = serve(
        "--batching", "static",
        "--device", "sim", "--freq", "306", "--batch", "2", "--max-wait-s", "100000", "--sim-speed", "10"
    )  # fmt: skip

    def queue() -> int:
        return httpx.get(srv.url + "/healthz").json()["queue"]

    with cf.ThreadPoolExecutor(max_workers=3) as pool:
        running = [pool.submit(complete, srv.url, "long1", 1000)]
        wait_for(lambda: queue() == 1)
        running.append(pool.submit(complete, srv.url, "long2", 1000))
        wait_for(lambda: queue() == 0)  # the batch of two is running
        queued = pool.submit(complete, srv.url, "queued", 2)
        wait_for(lambda: queue() == 1)
        srv.proc.send_signal(signal.SIGINT)
        wait_for(lambda: "shutting down" in srv.log)
        srv.proc.send_signal(signal.SIGINT)
        assert queued.result() == 503 and [f.result() for f in running] == [200, 200]
    assert srv.proc.wait(timeout=GUARD_S) == 130
    assert "already stopping (SIGINT)" in srv.log
    assert "edpilot: stopped (SIGINT); clocks restored" in srv.log
    assert [line for line in srv.log.splitlines() if line.startswith("edpilot: ")][1:] == [
        "edpilot: stopped (SIGINT); clocks restored"
    ]  # after "serving on …", one line: no "edpilot: interrupted" besides it
    assert "Traceback" not in srv.log


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs with 4 KiB left: root can mount one; elsewhere the test is skipped."""
    where = tmp_path / "tiny"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        stat = os.statvfs(where)
        (where / "filler").write_bytes(b"x" * (stat.f_bavail * stat.f_frsize - 4096))
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_full_disk_under_output_is_said_once_serving_goes_on_and_what_was_written_is_kept(serve, tiny_disk):
    log_path = tiny_disk / "run.jsonl"
    srv = serve("--device", "sim", "--freq", "816", "--batch", "1", "--max-wait-s", "0", "--sim-speed", "50",
                "--requests-per-round", "2", "--output", str(log_path))  # fmt: skip
    codes = [complete(srv.url, f"d{i}") for i in range(20)]
    assert codes == [200] * 20  # a round the log cannot take is still served, measured and costed
    rounds = metric_lines(httpx.get(srv.url + "/metrics", timeout=GUARD_S).text)["edpilot_rounds_total"]
    srv.proc.send_signal(signal.SIGTERM)
    # 143: the stop signal's exit (the summary that cannot be written is one more line, not a traceback)
    assert srv.proc.wait(timeout=GUARD_S) == 128 + signal.SIGTERM
    assert "Traceback" not in srv.log
    data = read_run_log(log_path)  # whole lines only: a torn last line is dropped
    assert data.header is not None and 1 <= len(data.rounds) < rounds == 10
    failed = [line for line in srv.log.splitlines() if "cannot write the run log" in line and "serving goes on" in line]
    assert len(failed) == 1 and "No space left on device" in failed[0]  # said once, not once a round
    assert f"the {len(data.rounds)} round(s) before it are kept" in failed[0]
    assert "not recorded" not in srv.log
    assert f"{int(rounds) - len(data.rounds)} round(s) are missing from the run log" in srv.log
