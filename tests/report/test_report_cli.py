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
    several = [c for c in data["configs"] if c["windows"] > 1]
    assert several and all(c["sd"] > 0 for c in several)
    assert all(c["sd"] is None for c in data["configs"] if c["windows"] == 1)
    assert data["gain"]["edp_pct"] == pytest.approx(100 * (1 - data["chosen"]["edp"] / data["baseline"]["edp"]))
    assert [p.rsplit("/", 1)[1] for p in data["plots"]] == ["heatmap.png", "convergence.png", "pareto.png"]


def test_report_table_names_the_objective_and_shows_edp_beside_it(weighted_log):
    r = runner.invoke(app, ["report", str(weighted_log)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "lowest weighted cost α=0.5 (baseline = 1) first" in r.stdout
    assert "objective: weighted:0.5 · energy: active" in r.stdout
    assert "EDP" in r.stdout and "(J·s)" in r.stdout  # the header wraps on words, never cut
    chosen_rows = [line for line in r.stdout.splitlines() if line.split()[:1] == ["★"]]
    assert len(chosen_rows) == 1
    assert re.search(r"chosen \(.* MHz, batch \d+\) vs baseline \(930\.75 MHz, batch 28\): weighted", r.stdout)
    assert re.search(r"EDP [\d.]+ vs [\d.]+ J·s \(-?[\d.]+% lower\)", r.stdout)


def test_report_of_a_latency_only_run_prints_the_table_and_plots_latency(tmp_path):
    log = tmp_path / "lat.jsonl"
    write(log, *latency_only())
    r = runner.invoke(app, ["report", str(log), "--out", str(tmp_path / "p")], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    rows = [line for line in r.stdout.splitlines() if "no clock" in line]
    assert [row.split("no clock")[1].split()[:2] for row in rows] == [["1", "1"], ["2", "1"], ["4", "1"]]
    assert rows[0].split()[0] == "★" and rows[-1].split()[0] == "base"
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


def rows_of(stdout: str) -> list[list[str]]:
    """The table's rows, split on whitespace (the table draws no vertical lines)."""
    lines = stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if set(line.strip()) == {"─"})
    return [line.split() for line in lines[start + 1 :] if line.strip() and not line.startswith("★ chosen ·")][:-1]


def test_the_table_fits_80_columns_without_cutting_a_header(weighted_log):
    r = runner.invoke(app, ["report", str(weighted_log)], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    rule = next(n for n, line in enumerate(lines) if set(line.strip()) == {"─"})
    table = lines[rule - 5 : rule + 1] + [line for line in lines[rule + 1 :] if line.split()[:1] != ["note:"]][:5]
    assert all(len(line) <= 80 for line in table), table
    assert "…" not in r.stdout
    header_words = " ".join(lines[rule - 5 : rule]).split()
    for word in ["MHz", "batch", "windows", "weighted", "α=0.5", "(baseline", "sd", "energy", "(J/req)", "p95"]:
        assert word in header_words, (word, header_words)
    assert "keeps" in header_words and "up" in header_words


def test_the_spread_across_windows_is_a_column(weighted_log):
    from edpilot.report import load_report, spread
    from edpilot.runlog import read_run_log

    r = runner.invoke(app, ["report", str(weighted_log)], env={"COLUMNS": "200"})
    report = load_report(read_run_log(weighted_log))
    repeated = max(report.configs, key=lambda st: len(st.served))
    assert len(repeated.served) > 1  # the search measured some config more than once
    label = [f"{repeated.config.freq_mhz:g}", str(repeated.config.batch_size)]
    row = next(w for w in (line.split() for line in r.stdout.splitlines()) if label in (w[:2], w[1:3]))
    row = row if row[:2] == label else row[1:]
    assert row[2] == str(len(repeated.served)) and row[4] == f"{spread(repeated, 'cost'):.2g}"


def test_a_chosen_config_that_does_not_rank_first_is_explained(tmp_path):
    from edpilot.space import Config
    from tests.report.logs import header, rnd, summary

    rounds = [rnd(0, 900.0, 4, 15.0, 2.0), rnd(1, 500.0, 1, 3.0, 2.0)]
    rounds += [rnd(n, 500.0, 4, e, 2.0) for n, e in ((2, 3.5), (3, 4.5), (4, 4.0))]
    log = tmp_path / "run.jsonl"
    write(log, header(), *rounds, summary(rounds, Config.of(4, gpu_mhz=500.0), Config.of(4, gpu_mhz=900.0)))
    r = runner.invoke(app, ["report", str(log)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    first = next(line.split() for line in r.stdout.splitlines() if line.split()[:2] == ["500", "1"])
    assert first[2] == "1"  # ranks first on one window
    assert (
        "note: the ★ ranks #2 by measured mean: it was chosen on its 3 windows (± sd 1) and the strategy's "
        "estimate at this traffic. Above it: (500 MHz, batch 1), 1 window" in r.stdout
    )
