"""What a fleet runs around each board's server: per-rail energy and board power in /metrics, the Grafana
dashboard (every metric it queries is one the server exports), and the hardened systemd unit."""

from __future__ import annotations

import concurrent.futures as cf
import configparser
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.hardware.fake_jetson import AGX_ORIN_RAILS, build_tree

MODEL = "llama-3.2-1b"
CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
RAIL_POWER_W = {label: mv * ma / 1e6 for _, rails in AGX_ORIN_RAILS for label, mv, ma in rails if label != "NC"}


@pytest.fixture
def jetson_server(serve, tmp_path):
    fake = build_tree(tmp_path / "root").start()
    env = {"EDPILOT_SYSFS_ROOT": str(fake.root), "EDPILOT_STATE_DIR": str(tmp_path / "state")}
    srv = serve(
        "--device", "jetson", "--engine", "sim", "--freq", "522.75", "--batch", "1", "--max-wait-s", "0",
        "--requests-per-round", "2", env=env,
    )  # fmt: skip
    yield srv
    srv.stop()
    fake.stop()


def families(url: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)}


def rail_energy_j(url: str) -> dict[str, float]:
    family = families(url)["edpilot_rail_energy_joules"]
    assert family.type == "counter"
    return {s.labels["rail"]: s.value for s in family.samples if s.name == "edpilot_rail_energy_joules_total"}


def test_rail_energy_counters_and_board_power_on_a_jetson(jetson_server):
    url = jetson_server.url
    first = rail_energy_j(url)
    assert set(first) == set(RAIL_POWER_W)  # every connected rail, none of the NC channels
    deadline = time.monotonic() + 60
    while min(rail_energy_j(url)[r] - first[r] for r in first) < 2.0:  # counters rise (a guard, not a timing)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = rail_energy_j(url)
    gained = {rail: second[rail] - first[rail] for rail in first}
    gpu = "VDD_GPU_SOC"
    for rail, joules in gained.items():  # the fake's rails draw constant power: energy goes as power
        assert joules / gained[gpu] == pytest.approx(RAIL_POWER_W[rail] / RAIL_POWER_W[gpu], rel=0.05)
    power = families(url)["edpilot_board_power_watts"]
    assert power.type == "gauge" and power.samples[0].value == pytest.approx(sum(RAIL_POWER_W.values()))


def test_no_board_metrics_on_the_simulator(serve):
    srv = serve("--device", "sim", "--freq", "816", "--batch", "1")
    names = families(srv.url)
    assert "edpilot_rail_energy_joules" not in names and "edpilot_board_power_watts" not in names


def dashboard_metrics() -> set[str]:
    dashboard = json.loads((CONTRIB / "grafana" / "edpilot.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    assert len(queries) >= 10
    return {name for query in queries for name in re.findall(r"\bedpilot_[a-z0-9_]+", query)}


def test_every_metric_the_dashboard_queries_is_one_the_server_exports(jetson_server):
    url = jetson_server.url

    def ask(i: int) -> int:
        body = {"model": MODEL, "prompt": f"g{i}", "max_tokens": 2}
        return httpx.post(url + "/v1/completions", json=body, timeout=60).status_code

    with cf.ThreadPoolExecutor(max_workers=4) as pool:  # 20 arrivals: rounds recorded, the arrival rate estimated
        assert set(pool.map(ask, range(20))) == {200}
    exported = {s.name for f in families(url).values() for s in f.samples}
    queried = dashboard_metrics()
    assert {"edpilot_rail_energy_joules_total", "edpilot_board_power_watts"} <= queried
    assert queried - exported == set()


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(CONTRIB / "systemd" / "edpilot.service")
    return parser


def test_the_systemd_unit_serves_restarts_restores_and_runs_unprivileged():
    service = unit()["Service"]
    assert service["ExecStart"].startswith("/usr/local/bin/edpilot serve ")
    assert service["ExecStopPost"] == "/usr/local/bin/edpilot restore"
    assert service["Restart"] == "on-failure"
    assert set(service["SuccessExitStatus"].split()) == {"129", "130", "143"}  # a stop signal's exit is no failure
    assert service["User"] == "edpilot" and service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == "" and service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes" and service["PrivateTmp"] == "yes"


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd)")
    edpilot = Path(sys.executable).with_name("edpilot")
    if not edpilot.is_file():  # verify checks that the command exists: a launcher for this interpreter
        edpilot = tmp_path / "edpilot"
        edpilot.write_text(f'#!/bin/sh\nexec {sys.executable} -m edpilot "$@"\n')
        edpilot.chmod(0o755)
    text = (CONTRIB / "systemd" / "edpilot.service").read_text().replace("/usr/local/bin/edpilot", str(edpilot))
    (tmp_path / "edpilot.service").write_text(text)
    r = subprocess.run([analyze, "verify", "edpilot.service"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
