"""Reports: aggregates by the optimised cost, the Pareto front, the incumbent and the plots' marks."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.errors import ConfigError
from edpilot.report import incumbent_cost, load_report, pareto_front, write_plots
from edpilot.report.heatmap import cell_of, cost_grid

pytest.importorskip("matplotlib")


def rec(round_, f, b, e, lat, *, cost=None, keeps=True):
    return {
        "type": "round",
        "round": round_,
        "freq_mhz": f,
        "batch_size": b,
        "requests": 8,
        "failed_requests": 0,
        "energy_per_request_j": e,
        "mean_latency_s": lat,
        "p95_latency_s": lat * 1.5,
        "edp": None if e is None else e * lat,
        "keeps_up": keeps,
        "cost": cost if cost is not None else (None if e is None else e * lat),
    }


HEADER = {
    "type": "run",
    "device": {"backend": "sim", "name": "sim:orin-agx-32gb"},
    "model": "llama-3.2-1b",
    "arrivals": "uniform",
    "arrival_rate_per_s": 1.0,
    "objective": "edp",
    "energy_scope": "total",
    "freqs_mhz": [500, 900],
    "batch_sizes": [1, 4],
}
RECORDS = [
    HEADER,
    rec(0, 900, 4, 10.0, 3.0),
    rec(1, 500, 1, 4.0, 2.0),
    rec(2, 500, 4, 6.0, 1.0),
    rec(3, 500, 1, 6.0, 2.0),
    rec(4, 900, 1, 8.0, 5.0, keeps=False),
    {"type": "summary", "best": {"freq_mhz": 500, "batch_size": 4}, "baseline": {"freq_mhz": 900, "batch_size": 4}},
]


def weighted_records():
    """A run that optimised energy (weighted:1): the chosen config has the lowest energy, not the lowest EDP."""
    header = {**HEADER, "objective": "weighted:1", "energy_scope": "active"}
    return [
        header,
        rec(0, 900, 4, 10.0, 3.0, cost=1.0),
        rec(1, 500, 1, 2.0, 20.0, cost=0.2),  # lowest energy, worst EDP (40)
        rec(2, 500, 4, 6.0, 1.0, cost=0.6),  # lowest EDP (6)
        rec(3, 900, 1, 8.0, 2.0, cost=0.8),
        {"type": "summary", "best": {"freq_mhz": 500, "batch_size": 1}, "baseline": {"freq_mhz": 900, "batch_size": 4}},
    ]


def test_points_average_repeats_and_sort_by_the_optimised_cost():
    report = load_report(RECORDS)
    assert [p.key for p in report.points] == [(500, 4), (500, 1), (900, 4), (900, 1)]
    assert report.points[1].windows == 2 and report.points[1].edp == pytest.approx(10.0)
    assert report.points[-1].keeps_up is False
    assert report.best == (500, 4) and report.baseline == (900, 4)
    assert report.info.title(has_energy=True) == (
        "sim:orin-agx-32gb · llama-3.2-1b · λ = 1 req/s (uniform) · objective: edp · energy: total"
    )


def test_a_weighted_run_ranks_by_its_cost_not_by_edp():
    report = load_report(weighted_records())
    assert [p.key for p in report.points] == [(500, 1), (500, 4), (900, 1), (900, 4)]
    assert report.points[0].cost == 0.2 and report.points[0].edp == 40.0
    assert report.info.objective_label == "weighted cost α=1 (baseline = 1)"


def test_the_heatmap_colours_the_optimised_cost_and_boxes_the_chosen_cell():
    report = load_report(weighted_records())
    freqs, batches, grid = cost_grid(report)
    assert freqs == [500, 900] and batches == [1, 4]
    assert grid[0, 0] == 0.2 and grid[1, 1] == 1.0  # cost, not EDP (40 and 30)
    row, col = cell_of(report.best, freqs, batches)
    assert grid[row, col] == np.nanmin(grid)
    assert cell_of(report.baseline, freqs, batches) == (1, 1)


def test_pareto_front_and_incumbent():
    report = load_report(RECORDS)
    assert [p.key for p in pareto_front(report.points)] == [(500, 4), (500, 1)]
    assert incumbent_cost(report.rounds) == [30.0, 8.0, 6.0, 6.0, 6.0]


def latency_only_records():
    header = {**HEADER, "objective": "latency", "device": {"backend": "cpu", "name": "cpu"}, "freqs_mhz": []}
    rounds = [rec(i, 1.0, b, None, lat, cost=lat) for i, (b, lat) in enumerate([(4, 9.0), (1, 2.0), (2, 4.0)])]
    summary = {
        "type": "summary",
        "best": {"freq_mhz": 1.0, "batch_size": 1},
        "baseline": {"freq_mhz": 1.0, "batch_size": 4},
    }
    return [header, *rounds, summary]


def test_a_latency_only_run_is_ranked_by_latency():
    report = load_report(latency_only_records())
    assert not report.has_energy
    assert [(p.batch_size, p.cost) for p in report.points] == [(1, 2.0), (2, 4.0), (4, 9.0)]
    assert all(p.edp is None and p.energy_per_request_j is None for p in report.points)
    assert "energy: not measured" in report.info.title(has_energy=False)


def test_a_round_whose_requests_all_failed_is_listed_last_and_never_costed():
    failed = {**rec(5, 500, 4, None, 0.0), "failed_requests": 8, "mean_latency_s": None, "cost": None}
    report = load_report([*RECORDS[:-1], failed, {**rec(6, 900, 1, None, 0.0), "failed": True, "cost": 99.0}])
    by_key = {p.key: p for p in report.points}
    assert by_key[(500, 4)].windows == 1 and by_key[(500, 4)].failed_windows == 1
    assert by_key[(900, 1)].cost == pytest.approx(40.0)  # the failed round's 99 is not averaged in


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"freq_mhz": "fast"}, "'freq_mhz' must be a finite number"),
        ({"freq_mhz": [[[[900]]]]}, "'freq_mhz' must be a finite number"),
        ({"batch_size": 2.5}, "'batch_size' must be a whole number"),
        ({"mean_latency_s": float("nan")}, "'mean_latency_s' must be a finite number"),
        ({"energy_per_request_j": float("inf")}, "'energy_per_request_j' must be a finite number"),
        ({"energy_per_request_j": -1.0}, "'energy_per_request_j' must be a finite number >= 0"),
        ({"cost": 10**400}, "'cost' must be a finite number"),
        ({"keeps_up": "yes"}, "'keeps_up' must be true or false"),
        ({"round": None}, "'round' is missing"),
    ],
)
def test_a_round_of_the_wrong_shape_is_one_clear_error(bad, message):
    with pytest.raises(ConfigError, match=message):
        load_report([HEADER, {**rec(0, 900, 4, 10.0, 3.0), **bad}])


def test_a_header_or_summary_of_the_wrong_shape_is_one_clear_error():
    with pytest.raises(ConfigError, match="run header: 'objective' must be a string"):
        load_report([{**HEADER, "objective": {"name": "edp"}}, rec(0, 900, 4, 10.0, 3.0)])
    with pytest.raises(ConfigError, match="summary record: 'best' must be an object"):
        load_report([HEADER, rec(0, 900, 4, 10.0, 3.0), {"type": "summary", "best": [500, 4]}])


def test_every_plot_is_written_and_the_third_shows_latency_without_energy(tmp_path):
    paths = write_plots(load_report(RECORDS), tmp_path / "plots")
    assert [p.name for p in paths] == ["heatmap.png", "convergence.png", "pareto.png"]
    paths = write_plots(load_report(latency_only_records()), tmp_path / "lat")
    assert [p.name for p in paths] == ["heatmap.png", "convergence.png", "latency.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_plots_into_an_existing_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        write_plots(load_report(RECORDS), tmp_path / "taken")
