"""Reports of a run that searched the memory clock: one heatmap panel per level, a table column per knob."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edpilot.cli.report import report_table
from edpilot.records import RoundRecord
from edpilot.report import load_report, write_plots
from edpilot.report.heatmap import axis_label, cell_of, cost_grid, panel_levels
from edpilot.space import Config
from tests.report.logs import header, obs, read, summary

pytest.importorskip("matplotlib")


def knob_round(i, f, emc, b, e, lat):
    o = obs(e, lat, b=b, f=f)
    return RoundRecord(i, "baseline" if i == 0 else "search", Config.of(b, gpu_mhz=f, emc_mhz=emc), o, o.edp)


ROUNDS = [
    knob_round(0, 900.0, 3199.0, 4, 10.0, 3.0),
    knob_round(1, 500.0, 665.6, 1, 4.0, 2.0),
    knob_round(2, 500.0, 3199.0, 4, 6.0, 1.0),
    knob_round(3, 900.0, 665.6, 4, 7.0, 2.0),
]
BEST, BASE = Config.of(4, gpu_mhz=500.0, emc_mhz=3199.0), Config.of(4, gpu_mhz=900.0, emc_mhz=3199.0)


@pytest.fixture
def report(tmp_path):
    head = dataclasses.replace(
        header(),
        axes={"emc_mhz": [665.6, 2133.0, 3199.0]},
        baseline={"freq_mhz": 900.0, "emc_mhz": 3199.0, "batch_size": 4},
    )
    return load_report(read(tmp_path, head, *ROUNDS, summary(ROUNDS, BEST, BASE)))


def test_one_panel_per_memory_clock_level_of_the_grid(report):
    assert panel_levels(report) == [665.6, 2133.0, 3199.0]  # 2133 was never measured: an empty panel, still drawn
    freqs, batches, low = cost_grid(report, 665.6)
    assert freqs == [500.0, 900.0] and batches == [1, 4]
    assert low[0, 0] == pytest.approx(8.0) and low[1, 1] == pytest.approx(14.0)  # EDP = energy × latency
    assert np.isnan(low[0, 1]) and np.isnan(low[1, 0])
    _, _, high = cost_grid(report, 3199.0)
    assert high[0, 1] == pytest.approx(6.0) and high[1, 1] == pytest.approx(30.0)
    assert np.isnan(cost_grid(report, 2133.0)[2]).all()
    assert (
        cell_of(report.best, freqs, batches, 3199.0) == (0, 1) and cell_of(report.best, freqs, batches, 665.6) is None
    )


def test_the_heatmap_draws_small_multiples_with_one_colour_bar(report, tmp_path, monkeypatch):
    import matplotlib.figure

    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, **kw: saved.append((fig, path)))
    write_plots(report, tmp_path)
    fig = next(fig for fig, path in saved if str(path).endswith("heatmap.png"))
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 3 and len(fig.axes) == 4  # three panels and their shared colour bar
    assert [ax.get_xlabel().splitlines()[-1] for ax in panels] == [
        "memory clock 665.6 MHz",
        "memory clock 2133 MHz",
        "memory clock 3199 MHz",
    ]
    assert panels[0].get_ylabel() == "GPU clock (MHz)"
    norms = {id(ax.get_images()[0].norm) for ax in panels}
    assert len(norms) == 1  # one colour scale across the panels


def test_axis_labels_come_from_the_knob_names():
    assert axis_label("gpu_mhz") == "GPU clock (MHz)"
    assert axis_label("emc_mhz") == "memory clock (MHz)"
    assert axis_label("decode_gpu_mhz") == "decode GPU clock (MHz)"


def test_the_table_has_a_column_per_knob(report):
    table = report_table(report, source="run.jsonl")
    headers = [str(c.header) for c in table.columns]
    assert headers[1:4] == ["MHz", "EMC MHz", "batch"]
    assert list(table.columns[2].cells)[0] == "3199"  # the best (lowest EDP) row first
