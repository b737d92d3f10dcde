"""Reports: ConfigStats ranked by the optimised cost, the Pareto front, the incumbent and the plots' marks."""

from __future__ import annotations

import numpy as np
import pytest

from edpilot.errors import ConfigError
from edpilot.records import RoundRecord
from edpilot.report import load_report, pareto_front, running_min, write_plots
from edpilot.report.heatmap import cell_of, colour_norm, cost_grid
from edpilot.space import Config
from tests.report.logs import header, latency_only, obs, read, rnd, summary

pytest.importorskip("matplotlib")


EDP_ROUNDS = [
    rnd(0, 900.0, 4, 10.0, 3.0),
    rnd(1, 500.0, 1, 4.0, 2.0),
    rnd(2, 500.0, 4, 6.0, 1.0),
    rnd(3, 500.0, 1, 6.0, 2.0),
    rnd(4, 900.0, 1, 8.0, 5.0, keeps=False),
]


@pytest.fixture
def edp_log(tmp_path):
    return read(tmp_path, header(), *EDP_ROUNDS, summary(EDP_ROUNDS, Config(500.0, 4), Config(900.0, 4)))


@pytest.fixture
def weighted_log(tmp_path):
    """A run that optimised energy (weighted:1): the chosen config has the lowest energy, not the lowest EDP."""
    rounds = [
        rnd(0, 900.0, 4, 10.0, 3.0, cost=1.0),
        rnd(1, 500.0, 1, 2.0, 20.0, cost=0.2),  # lowest energy, worst EDP (40)
        rnd(2, 500.0, 4, 6.0, 1.0, cost=0.6),  # lowest EDP (6)
        rnd(3, 900.0, 1, 8.0, 2.0, cost=0.8),
    ]
    best = summary(rounds, Config(500.0, 1), Config(900.0, 4), "weighted:1")
    return read(tmp_path, header(objective="weighted:1", scope="active"), *rounds, best)


def test_configs_average_repeats_and_sort_by_the_optimised_cost(edp_log):
    report = load_report(edp_log)
    assert [(s.config.freq_mhz, s.config.batch_size) for s in report.configs] == [
        (500, 4),
        (500, 1),
        (900, 4),
        (900, 1),
    ]
    assert report.configs[1].windows == 2 and report.configs[1].edp == pytest.approx(10.0)
    assert report.configs[1].cost == pytest.approx(10.0)
    assert report.configs[-1].keeps_up is False
    assert report.best == Config(500.0, 4) and report.baseline == Config(900.0, 4)
    assert report.title() == "sim:orin-agx-32gb · llama-3.2-1b · λ = 1 req/s (uniform) · objective: edp · energy: total"


def test_a_weighted_run_ranks_by_its_cost_not_by_edp(weighted_log):
    report = load_report(weighted_log)
    order = [(500.0, 1), (500.0, 4), (900.0, 1), (900.0, 4)]
    assert [s.config for s in report.configs] == [Config(f, b) for f, b in order]
    assert report.configs[0].cost == 0.2 and report.configs[0].edp == 40.0
    assert report.objective_label == "weighted cost α=1 (baseline = 1)"


def test_the_heatmap_colours_the_optimised_cost_on_a_log_scale_and_boxes_the_chosen_cell(weighted_log):
    from matplotlib.colors import LogNorm

    report = load_report(weighted_log)
    freqs, batches, grid = cost_grid(report)
    assert freqs == [500, 900] and batches == [1, 4]
    assert grid[0, 0] == 0.2 and grid[1, 1] == 1.0  # cost, not EDP (40 and 30)
    row, col = cell_of(report.best, freqs, batches)
    assert grid[row, col] == np.nanmin(grid)
    assert cell_of(report.baseline, freqs, batches) == (1, 1)
    norm = colour_norm(grid[~np.isnan(grid)])
    assert isinstance(norm, LogNorm) and (norm.vmin, norm.vmax) == (0.2, 1.0)


def test_pareto_front_and_incumbent(edp_log):
    report = load_report(edp_log)
    assert [s.config for s in pareto_front(report.configs)] == [Config(500.0, 4), Config(500.0, 1)]
    assert running_min(r.cost for r in report.rounds) == [30.0, 8.0, 6.0, 6.0, 6.0]


@pytest.fixture
def latency_log(tmp_path):
    return read(tmp_path, *latency_only())


def test_a_latency_only_run_is_ranked_by_latency_and_plots_latency(latency_log, tmp_path):
    report = load_report(latency_log)
    assert not report.has_energy
    assert [(s.config.batch_size, s.cost) for s in report.configs] == [(1, 2.0), (2, 4.0), (4, 9.0)]
    assert all(s.edp is None and s.energy_per_request_j is None for s in report.configs)
    assert report.title().endswith("objective: latency · energy: not measured")
    freqs, batches, grid = cost_grid(report)
    assert freqs == [None] and batches == [1, 2, 4] and grid.tolist() == [[2.0, 4.0, 9.0]]
    assert cell_of(report.best, freqs, batches) == (0, 0)
    paths = write_plots(report, tmp_path / "lat")
    assert [p.name for p in paths] == ["heatmap.png", "convergence.png", "latency.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_a_round_whose_requests_all_failed_is_listed_last_and_never_costed(tmp_path):
    failed = RoundRecord(5, "search", Config(500.0, 4), obs(None, 0.4, f=500.0, failed=True), None)
    report = load_report(read(tmp_path, header(), *EDP_ROUNDS, failed))
    by_config = {s.config: s for s in report.configs}
    assert by_config[Config(500.0, 4)].windows == 2 and by_config[Config(500.0, 4)].failed_windows == 1
    assert by_config[Config(500.0, 4)].cost == pytest.approx(6.0)
    assert report.best is None and report.baseline == Config(900.0, 4)  # no summary: the header's baseline


def test_a_config_whose_every_window_failed_is_last(tmp_path):
    failed = RoundRecord(1, "search", Config(500.0, 1), obs(None, 0.4, f=500.0, failed=True), None)
    report = load_report(read(tmp_path, header(), EDP_ROUNDS[0], failed))
    assert [s.config for s in report.configs] == [Config(900.0, 4), Config(500.0, 1)]
    assert report.configs[-1].cost is None and not report.configs[-1].served


def test_every_plot_is_written_with_energy(edp_log, tmp_path):
    paths = write_plots(load_report(edp_log), tmp_path / "plots")
    assert [p.name for p in paths] == ["heatmap.png", "convergence.png", "pareto.png"]
    assert all(p.stat().st_size > 5000 for p in paths)


def test_plots_into_an_existing_file_is_refused(edp_log, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        write_plots(load_report(edp_log), tmp_path / "taken")
