"""`edpilot report` end to end: real tuning runs, the table's order and marks, strict JSON, bad inputs."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from edpilot.cli import app
from tests.report.logs import latency_only, write

pytest.importorskip("matplotlib")

runner = CliRunner()


def strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def weighted_log(tmp_path_factory):
    log = tmp_path_factory.mktemp("run") / "run.jsonl"
    args = ["tune", "--budget", "20", "--objective", "weighted:0.5", "--energy-scope", "active"]
    r = runner.invoke(app, [*args, "--output", str(log), "--json"])
    assert r.exit_code == 0, r.output
    return log


def test_report_of_a_weighted_run_sorts_by_its_cost_and_marks_the_chosen(weighted_log, tmp_path):
    r = runner.invoke(app, ["report", str(weighted_log), "--out", str(tmp_path / "out"), "--json"])
    assert r.exit_code == 0, r.output
    data = strict_json(r.stdout)
    costs = [c["cost"] for c in data["configs"]]
    assert costs == sorted(costs) and len(costs) >= 5
    assert data["objective"] == "weighted:0.5" and data["run"]["energy_scope"] == "active"
    summary = [json.loads(line) for line in weighted_log.read_text().splitlines()][-1]
    assert data["chosen"] == summary["best"] and data["baseline"] == summary["baseline"]
    assert data["configs"][0]["cost"] <= data["chosen"]["cost"]
    assert data["baseline"]["cost"] == pytest.approx(1.0)
    assert data["gain"]["edp_pct"] == pytest.approx(100 * (1 - data["chosen"]["edp"] / data["baseline"]["edp"]))
    assert [p.rsplit("/", 1)[1] for p in data["plots"]] == ["heatmap.png", "convergence.png", "pareto.png"]


def test_report_table_names_the_objective_and_shows_edp_beside_it(weighted_log):
    r = runner.invoke(app, ["report", str(weighted_log)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "lowest weighted cost α=0.5 (baseline = 1) first" in r.stdout
    assert "objective: weighted:0.5 · energy: active" in r.stdout
    assert "EDP (J·s)" in r.stdout
    chosen_rows = [line for line in r.stdout.splitlines() if "★ chosen" in line]
    assert len(chosen_rows) == 1
    assert re.search(r"chosen \(.* MHz, batch \d+\) vs baseline \(930\.75 MHz, batch 28\): weighted", r.stdout)
    assert re.search(r"EDP [\d.]+ vs [\d.]+ J·s \(-?[\d.]+% lower\)", r.stdout)


def test_report_of_a_latency_only_run_prints_the_table_and_plots_latency(tmp_path):
    log = tmp_path / "lat.jsonl"
    write(log, *latency_only())
    r = runner.invoke(app, ["report", str(log), "--out", str(tmp_path / "p")], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    rows = [line for line in r.stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[2].strip() for row in rows] == ["no clock"] * 3
    assert [row.split("│")[3].strip() for row in rows] == ["1", "2", "4"]
    assert "★ chosen" in rows[0] and "baseline" in rows[-1]
    assert "cpu · llama-3.2-1b" in r.stdout and "energy: not measured" in r.stdout
    assert "EDP" not in r.stdout and "energy/req" not in r.stdout
    assert "chosen (batch 1) vs baseline (batch 4): mean latency (s) 2 vs 9 (77.8% lower)" in r.stdout
    assert (tmp_path / "p" / "latency.png").stat().st_size > 5000


def bad_logs(tmp_path, good_lines):
    deep = "[" * 100_000 + "]" * 100_000
    return {
        "deep nesting": deep + "\n" + good_lines,
        "wrong types": good_lines.replace('"batch_size": 28', '"batch_size": "twenty-eight"', 1),
        "NaN value": good_lines.replace('"mean_latency_s": ', '"mean_latency_s": NaN, "x": ', 1),
        "Infinity value": good_lines.replace('"energy_per_request_j": ', '"energy_per_request_j": Infinity, "x": ', 1),
        "huge integer": good_lines.replace('"round": 0', '"round": ' + "9" * 5000, 1),
        "a list, not records": "[1, 2, 3]\n" + good_lines,
    }


def test_run_logs_of_the_wrong_shape_are_one_line_and_exit_2(weighted_log, tmp_path):
    good = weighted_log.read_text()
    for name, text in bad_logs(tmp_path, good).items():
        log = tmp_path / "bad.jsonl"
        log.write_text(text)
        r = runner.invoke(app, ["report", str(log), "--json"])
        assert r.exit_code == 2, (name, r.output[-300:])
        assert r.stderr.startswith("edpilot: error:") and len(r.stderr.strip().splitlines()) == 1, (name, r.stderr)
        assert "Traceback" not in r.output


def test_a_bom_at_the_start_never_ends_in_a_traceback(weighted_log, tmp_path):
    log = tmp_path / "bom.jsonl"
    log.write_bytes(b"\xef\xbb\xbf" + weighted_log.read_bytes())
    r = runner.invoke(app, ["report", str(log)])
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert r.exit_code in (0, 2) and "Traceback" not in r.output
    if r.exit_code == 2:
        assert len(r.stderr.strip().splitlines()) == 1


def test_report_out_an_existing_file_is_one_line_and_exit_2(weighted_log, tmp_path):
    taken = tmp_path / "plots.png"
    taken.write_bytes(b"not a folder")
    r = runner.invoke(app, ["report", str(weighted_log), "--out", str(taken)])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"edpilot: error: --out {taken} is a file, not a folder: name a folder for the plots"
    assert taken.read_bytes() == b"not a folder"
