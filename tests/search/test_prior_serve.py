"""`serve --prior`: the online session starts from a twin's run as `tune` does (in process, on the virtual clock)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edpilot.cli import app
from edpilot.runlog import read_run_log

pytest.importorskip("prometheus_client")

from tests.server.test_online_control import serve_arrivals, uniform  # noqa: E402


def test_serve_with_a_twins_prior_serves_the_twins_best_right_after_the_baseline(tmp_path):
    prior = tmp_path / "a.jsonl"
    r = CliRunner().invoke(app, ["tune", "--budget", "15", "--output", str(prior)])  # λ = 1, the 32GB Orin
    assert r.exit_code == 0, r.output
    summary = read_run_log(prior).summary
    assert summary is not None
    warm, _ = serve_arrivals(uniform(1.0, 400), prior=prior)
    cold, _ = serve_arrivals(uniform(1.0, 400))
    assert warm.session.rounds[1].config == summary.best_config
    assert cold.session.rounds[1].config != summary.best_config
    first = next(k for k, rec in enumerate(cold.session.rounds) if rec.config == summary.best_config)
    assert first >= 3  # cold, the best is found rounds later
    assert warm.session.settings.prior is not None and len(warm.session.settings.prior.windows) == 16
