"""Reports: ConfigStats ranked by the optimised cost, the Pareto front, the incumbent and the plots' marks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edpilot.errors import ConfigError
from edpilot.records import RoundRecord
from edpilot.report import incumbent_means, load_report, pareto_front, spread, write_plots
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
    return read(
        tmp_path, header(), *EDP_ROUNDS, summary(EDP_ROUNDS, Config.of(4, gpu_mhz=500.0), Config.of(4, gpu_mhz=900.0))
    )


@pytest.fixture
def weighted_log(tmp_path):
    """A run that optimised energy (weighted:1): the chosen config has the lowest energy, not the lowest EDP."""
    rounds = [
        rnd(0, 900.0, 4, 10.0, 3.0, cost=1.0),
        rnd(1, 500.0, 1, 2.0, 20.0, cost=0.2),  # lowest energy, worst EDP (40)
        rnd(2, 500.0, 4, 6.0, 1.0, cost=0.6),  # lowest EDP (6)
        rnd(3, 900.0, 1, 8.0, 2.0, cost=0.8),
    ]
    best = summary(rounds, Config.of(1, gpu_mhz=500.0), Config.of(4, gpu_mhz=900.0), "weighted:1")
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
    assert report.best == Config.of(4, gpu_mhz=500.0) and report.baseline == Config.of(4, gpu_mhz=900.0)
    assert report.title() == "sim:orin-agx-32gb · llama-3.2-1b · λ = 1 req/s (uniform) · objective: edp · energy: total"


def test_a_weighted_run_ranks_by_its_cost_not_by_edp(weighted_log):
    report = load_report(weighted_log)
    order = [(500.0, 1), (500.0, 4), (900.0, 1), (900.0, 4)]
    assert [s.config for s in report.configs] == [Config.of(b, gpu_mhz=f) for f, b in order]
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


def test_pareto_front(edp_log):
    report = load_report(edp_log)
    assert [s.config for s in pareto_front(report.configs)] == [
        Config.of(4, gpu_mhz=500.0),
        Config.of(1, gpu_mhz=500.0),
    ]


def noisy_rounds(*, with_incumbent: bool = True):
    """A lucky first window at (500, 1) that later windows do not bear out; (500, 4) is chosen on two windows."""
    a, b, base = Config.of(1, gpu_mhz=500.0), Config.of(4, gpu_mhz=500.0), Config.of(4, gpu_mhz=900.0)
    plan = [(base, 30.0, base), (a, 5.0, a), (a, 11.0, a), (b, 7.0, b), (b, 9.0, b)]
    rounds = []
    for n, (config, cost, incumbent) in enumerate(plan):
        r = rnd(n, config.freq_mhz, config.batch_size, cost / 2, 2.0, cost=cost)
        rounds.append(dataclasses.replace(r, incumbent=incumbent if with_incumbent else None))
    return rounds


def test_the_convergence_line_is_the_incumbents_mean_not_a_running_minimum(tmp_path):
    rounds = noisy_rounds()
    report = load_report(
        read(tmp_path, header(), *rounds, summary(rounds, Config.of(4, gpu_mhz=500.0), Config.of(4, gpu_mhz=900.0)))
    )
    steps = incumbent_means(report, "cost")
    assert [(x, c.batch_size, m) for x, c, m in steps] == [
        (0, 4, 30.0),
        (1, 1, 5.0),
        (2, 1, 8.0),
        (3, 4, 7.0),
        (4, 4, 8.0),
    ]
    assert steps[-1][2] == report.stats(report.best).cost == 8.0  # a running minimum would end at 5.0
    assert spread(report.stats(Config.of(1, gpu_mhz=500.0)), "cost") == pytest.approx(18**0.5)
    assert spread(report.stats(Config.of(4, gpu_mhz=900.0)), "cost") is None  # one window: no spread


def test_a_log_without_incumbents_follows_the_lowest_mean_and_ends_at_the_choice(tmp_path):
    rounds = noisy_rounds(with_incumbent=False)
    report = load_report(
        read(tmp_path, header(), *rounds, summary(rounds, Config.of(4, gpu_mhz=500.0), Config.of(4, gpu_mhz=900.0)))
    )
    assert [m for _, _, m in incumbent_means(report, "cost")] == [30.0, 5.0, 8.0, 7.0, 8.0]


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
    failed = RoundRecord(5, "search", Config.of(4, gpu_mhz=500.0), obs(None, 0.4, f=500.0, failed=True), None)
    report = load_report(read(tmp_path, header(), *EDP_ROUNDS, failed))
    by_config = {s.config: s for s in report.configs}
    assert (
        by_config[Config.of(4, gpu_mhz=500.0)].windows == 2
        and by_config[Config.of(4, gpu_mhz=500.0)].failed_windows == 1
    )
    assert by_config[Config.of(4, gpu_mhz=500.0)].cost == pytest.approx(6.0)
    assert report.best is None and report.baseline == Config.of(4, gpu_mhz=900.0)  # no summary: the header's baseline


def test_a_config_whose_every_window_failed_is_last(tmp_path):
    failed = RoundRecord(1, "search", Config.of(1, gpu_mhz=500.0), obs(None, 0.4, f=500.0, failed=True), None)
    report = load_report(read(tmp_path, header(), EDP_ROUNDS[0], failed))
    assert [s.config for s in report.configs] == [Config.of(4, gpu_mhz=900.0), Config.of(1, gpu_mhz=500.0)]
    assert report.configs[-1].cost is None and not report.configs[-1].served


def test_every_plot_is_written_with_energy(edp_log, tmp_path):
    paths = write_plots(load_report(edp_log), tmp_path / "plots")
    assert [p.name for p in paths] == ["heatmap.png", "convergence.png", "pareto.png"]
    assert all(p.stat().st_size > 5000 for p in paths)


def test_plots_into_an_existing_file_is_refused(edp_log, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        write_plots(load_report(edp_log), tmp_path / "taken")


def test_front_labels_never_overlap_each_other_or_a_marker_and_the_rest_are_listed():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edpilot.report.scatter import POINT_BOX_PX, place_labels

    rng = np.random.default_rng(0)
    anchors = [(float(x), float(y)) for x, y in zip(rng.uniform(1, 1.5, 40), rng.uniform(3, 3.4, 40))]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(*zip(*anchors))
    fig.tight_layout()
    unplaced = place_labels(ax, anchors, [f"{n}: 930.75, b{n}" for n in range(40)])
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) + len(unplaced) == 40 and len(boxes) >= 5  # a crowd: some placed, the rest listed
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    frame = ax.get_window_extent(renderer)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
    pixels = [ax.transData.transform(a) for a in anchors]
    pad = POINT_BOX_PX
    assert not any(b.x0 - pad < x < b.x1 + pad and b.y0 - pad < y < b.y1 + pad for b in boxes for x, y in pixels)
    plt.close(fig)


def test_the_baseline_gets_its_own_labelled_tick_on_a_log_axis():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edpilot.report.figure import plain_ticks, tick_at

    fig, ax = plt.subplots()
    ax.plot([0.9, 2, 15], [2.8, 3.5, 4.2])
    ax.set_xscale("log")
    plain_ticks(ax.xaxis)
    tick_at(ax.xaxis, 14.98, "baseline")
    tick_at(ax.yaxis, 2.826, "baseline")
    fig.canvas.draw()
    xs = [t.get_text() for t in ax.get_xticklabels()]
    ys = [t.get_text() for t in ax.get_yticklabels()]
    assert "14.98\nbaseline" in xs and "baseline 2.826" in ys
    assert len([x for x in xs if x]) >= 3  # the axis keeps its own ticks away from the baseline's
    plt.close(fig)


def test_equal_edp_curves_run_through_the_chosen_and_the_baseline(edp_log):
    from edpilot.report.scatter import _edp_levels

    report = load_report(edp_log)
    levels = _edp_levels(report)
    assert levels[0] == pytest.approx(report.stats(report.best).edp)
    assert levels[-1] == pytest.approx(report.stats(report.baseline).edp) and len(levels) == 4
