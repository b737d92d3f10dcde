"""`edpilot serve` batches continuously unless told otherwise; `--paper` keeps the paper's static batching."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("openai")


@pytest.mark.parametrize(
    ("args", "batching"),
    [((), "continuous"), (("--paper",), "static"), (("--batching", "static"), "static")],
)
def test_serve_says_which_batching_it_runs(args: tuple[str, ...], batching: str) -> None:
    from tests.server.conftest import start_server

    server = start_server("--device", "sim", "--engine", "sim", "--sim-speed", "50", "--batch", "2", *args)
    try:
        line = next(line for line in server.stderr if "serving on" in line)
        assert re.search(rf", {batching} batching$", line.strip()), line
        answer = server.client().completions.create(model="llama-3.2-1b", prompt="one lone request", max_tokens=4)
        assert answer.usage.completion_tokens == 4
    finally:
        assert server.stop() == 143, server.log
