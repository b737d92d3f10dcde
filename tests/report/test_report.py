"""Reports: aggregates, Pareto front and the three plots."""

from __future__ import annotations

import json

import pytest

from edpilot.report import config_points, incumbent_edp, pareto_front, write_plots

pytest.importorskip("matplotlib")


def rec(round_, f, b, e, lat, keeps=True):
    return {
        "type": "round",
        "round": round_,
        "freq_mhz": f,
        "batch_size": b,
        "energy_per_request_j": e,
        "mean_latency_s": lat,
        "edp": e * lat,
        "keeps_up": keeps,
    }


RECORDS = [
    {"type": "run", "freqs_mhz": [500, 900], "batch_sizes": [1, 4]},
    rec(0, 900, 4, 10.0, 3.0),
    rec(1, 500, 1, 4.0, 2.0),
    rec(2, 500, 4, 6.0, 1.0),
    rec(3, 500, 1, 6.0, 2.0),
    rec(4, 900, 1, 8.0, 5.0, keeps=False),
    {"type": "summary", "best": {"freq_mhz": 500, "batch_size": 4}, "edp_baseline": 30.0},
]


def test_config_points_average_repeats_and_sort_by_edp():
    points = config_points(RECORDS)
    assert [(p.freq_mhz, p.batch_size) for p in points] == [(500, 4), (500, 1), (900, 4), (900, 1)]
    assert points[1].windows == 2 and points[1].edp == pytest.approx(10.0)
    assert points[-1].keeps_up is False


def test_pareto_front_and_incumbent():
    front = pareto_front(config_points(RECORDS))
    assert [(p.freq_mhz, p.batch_size) for p in front] == [(500, 4), (500, 1)]
    assert incumbent_edp(RECORDS) == [30.0, 8.0, 6.0, 6.0, 6.0]


def test_plots_are_written(tmp_path):
    paths = write_plots(RECORDS, tmp_path / "plots")
    assert [p.name for p in paths] == ["heatmap.png", "convergence.png", "pareto.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_report_of_a_real_run(tmp_path):
    from typer.testing import CliRunner

    from edpilot.cli import app

    log = tmp_path / "run.jsonl"
    r = CliRunner().invoke(app, ["tune", "--budget", "8", "--output", str(log), "--json"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["report", str(log), "--out", str(tmp_path / "out"), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert len(data["configs"]) >= 2 and len(data["plots"]) == 3
