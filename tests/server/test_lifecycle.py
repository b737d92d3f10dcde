"""Online tuning on live traffic, serving a tuning run's choice, and stopping: SIGTERM, SIGKILL + restore."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from edpilot.runlog import read_run_log
from tests.hardware.fake_jetson import ORIN_LEVELS_HZ, build_tree
from tests.server.conftest import openai

MODEL = "llama-3.2-1b"
ORIGINAL = {"min_freq": str(ORIN_LEVELS_HZ[0]), "max_freq": str(ORIN_LEVELS_HZ[-1]), "governor": "nvhost_podgov"}


def wait_for(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def edpilot(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "edpilot", *args], env={**os.environ, **(env or {})}, capture_output=True, text=True
    )


def ask(client, prompts, max_tokens=4, workers=16):
    def one(prompt):
        try:
            return client.completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens).choices[0].text
        except openai.APIStatusError as exc:
            return exc.status_code

    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, prompts))


def test_online_tuning_records_rounds_that_report_reads(serve, tmp_path):
    log = tmp_path / "serve.jsonl"
    srv = serve(
        "--device",
        "sim",
        "--sim-speed",
        "200",
        "--freqs",
        "408,930.75",
        "--batches",
        "1,2",
        "--requests-per-round",
        "4",
        "--budget",
        "4",
        "--strategy",
        "grid",
        "--max-wait-s",
        "0.2",
        "--output",
        str(log),
    )
    answers = ask(srv.client(), [f"r{i} x" for i in range(80)])
    assert answers == [f"r{i} x r{i} x" for i in range(80)]
    assert srv.stop() in (0, 128 + signal.SIGTERM)
    data = read_run_log(log)
    assert data.header.mode == "serve" and data.header.arrivals == "live"
    assert data.rounds[0].role == "baseline" and (data.rounds[0].config.freq_mhz, data.rounds[0].config.batch_size) == (
        930.75,
        2,
    )
    assert len(data.rounds) >= 6
    assert {(r.config.freq_mhz, r.config.batch_size) for r in data.rounds} == {
        (f, b) for f in (408.0, 930.75) for b in (1, 2)
    }  # grid visited every config
    assert all(r.obs.energy_per_request_j > 0 for r in data.rounds)
    assert all(r.obs.requests >= 4 for r in data.rounds if "cut short" not in (r.note or ""))
    assert data.summary is not None and data.summary.best["batch_size"] in (1, 2)
    out = tmp_path / "plots"
    r = edpilot("report", str(log), "--out", str(out))
    assert r.returncode == 0, r.stderr


def test_serves_what_a_tuning_run_chose(serve, tmp_path):
    log = tmp_path / "tune.jsonl"
    r = edpilot(
        "tune",
        "--strategy",
        "grid",
        "--budget",
        "3",
        "--freqs",
        "510,816",
        "--batches",
        "4,8",
        "--output",
        str(log),
    )
    assert r.returncode == 0, r.stderr
    best = read_run_log(log).summary.best
    srv = serve("--device", "sim", "--config", str(log), "--sim-speed", "50")
    health = httpx.get(srv.url + "/healthz").json()
    assert (health["freq_mhz"], health["batch_size"]) == (best["freq_mhz"], best["batch_size"])


def test_sigterm_mid_load_answers_queued_requests_with_errors_and_keeps_the_log(serve, tmp_path):
    log = tmp_path / "serve.jsonl"
    srv = serve(
        "--device",
        "sim",
        "--freq",
        "306",
        "--batch",
        "4",
        "--batching",
        "static",
        "--max-wait-s",
        "100000",
        "--requests-per-round",
        "4",
        "--output",
        str(log),
    )
    client = srv.client()
    assert ask(client, [f"a{i}" for i in range(8)], max_tokens=2, workers=8) == [f"a{i} a{i}" for i in range(8)]
    with cf.ThreadPoolExecutor(max_workers=6) as pool:
        running = [pool.submit(ask, client, [f"b{i}"], 512, 1) for i in range(4)]  # one long batch
        wait_for(lambda: httpx.get(srv.url + "/metrics").text.count("edpilot_batches_total 3.0") == 1)
        queued = [pool.submit(ask, client, [f"c{i}"], 2, 1) for i in range(2)]
        wait_for(lambda: httpx.get(srv.url + "/healthz").json()["queue"] == 2)
        srv.proc.send_signal(signal.SIGTERM)
        assert [f.result()[0] for f in queued] == [503, 503]
        done = [f.result()[0] for f in running]
    assert done == [" ".join([f"b{i}"] * 512) for i in range(4)]  # the running batch finished
    assert srv.proc.wait(timeout=120) == 128 + signal.SIGTERM
    assert "2 queued requests answered with an error" in srv.log
    data = read_run_log(log)
    assert [r.obs.requests for r in data.rounds] == [8]  # a window is 2 batches of 4; the half round is not recorded
    assert "4 requests of an unfinished round are not recorded" in srv.log
    assert data.summary is not None


@pytest.fixture
def jetson(tmp_path):
    fake = build_tree(tmp_path / "root").start()
    env = {"EDPILOT_SYSFS_ROOT": str(fake.root), "EDPILOT_STATE_DIR": str(tmp_path / "state")}
    yield fake, env
    fake.stop()


def files(fake):
    return {name: fake.read(name) for name in ORIGINAL}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stopped_server_restores_the_jetson(serve, jetson, sig):
    fake, env = jetson
    srv = serve(
        "--device", "jetson", "--engine", "sim", "--freq", "522.75", "--batch", "2", "--max-wait-s", "0.1", env=env
    )
    wait_for(lambda: fake.read("max_freq") == "522750000")
    assert ask(srv.client(), ["j1", "j2", "j3"], max_tokens=2) == ["j1 j1", "j2 j2", "j3 j3"]
    srv.stop(sig)
    assert files(fake) == ORIGINAL
    assert edpilot("restore", env=env).stdout.strip() == "nothing to restore"


def test_a_killed_server_leaves_what_restore_undoes(serve, jetson):
    fake, env = jetson
    srv = serve("--device", "jetson", "--engine", "sim", "--freq", "216.75", "--batch", "1", env=env)
    wait_for(lambda: fake.read("max_freq") == "216750000")
    srv.stop(signal.SIGKILL)
    assert files(fake) != ORIGINAL
    r = edpilot("restore", env=env)
    assert r.returncode == 0, r.stderr
    assert files(fake) == ORIGINAL


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--host", "0.0.0.0"), "without --api-key"),
        (("--tune", "online", "--batch", "4"), "one of --tune online"),
        (("--tune", "offline"), "--tune takes 'online'"),
        (("--freq", "930.75"), "--freq needs --batch"),
        (("--sim-speed", "0"), "--sim-speed"),
        (("--max-wait-s", "-1"), "--max-wait-s"),
        (("--device", "cpu", "--engine", "sim", "--sim-speed", "2"), "--sim-speed only applies"),
        (("--read-timeout-s", "0"), "--read-timeout-s"),
        (("--max-connections", "0"), "--max-connections"),
    ],
)
def test_bad_options_are_one_line_errors(args, message):
    r = edpilot("serve", "--port", "0", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_config_without_a_summary_is_refused(tmp_path):
    log = tmp_path / "cut.jsonl"
    log.write_text(
        json.dumps(
            {
                "type": "round",
                "role": "baseline",
                "round": 0,
                "freq_mhz": 930.75,
                "batch_size": 4,
                "requests": 4,
                "energy_per_request_j": 1.0,
                "mean_latency_s": 1.0,
                "p95_latency_s": 1.0,
                "mean_ttft_s": None,
                "power_w": 1.0,
                "mean_batch_s": 1.0,
                "energy_per_batch_j": 4.0,
                "window_s": 4.0,
                "keeps_up": True,
                "cost": 1.0,
            }
        )
        + "\n"
    )
    r = edpilot("serve", "--port", "0", "--config", str(log))
    assert r.returncode == 2 and "no summary" in r.stderr


def test_serves_every_knob_a_tuning_run_chose(serve, tmp_path):
    log = tmp_path / "tune.jsonl"
    args = ("--strategy", "grid", "--budget", "3", "--freqs", "510", "--emcs", "665.6,3199", "--batches", "4,8")
    r = edpilot("tune", *args, "--output", str(log))
    assert r.returncode == 0, r.stderr
    best = read_run_log(log).summary.best
    srv = serve("--device", "sim", "--config", str(log), "--sim-speed", "50")
    health = httpx.get(srv.url + "/healthz").json()
    assert (health["freq_mhz"], health["emc_mhz"], health["batch_size"]) == (
        best["freq_mhz"],
        best["emc_mhz"],
        best["batch_size"],
    )
