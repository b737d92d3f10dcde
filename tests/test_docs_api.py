"""Every ```python example of docs/api.md (and the README's) runs as it is, on the simulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
API_MD = ROOT / "docs" / "api.md"


def examples(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.S | re.M)


EXAMPLES = examples(API_MD)


def test_the_page_has_its_examples():
    assert len(EXAMPLES) >= 6
    joined = "\n".join(EXAMPLES)
    for name in ("open_device", "open_engine", "EnergyMonitor", "Tuner", "tuner.round", "set_traffic", "tune("):
        assert name in joined


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_example_runs(code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples that write a run log write it here
    exec(compile(code, f"{API_MD}:example", "exec"), {"__name__": "__docs__"})
    assert capsys.readouterr().out.strip()  # every example shows something


def test_the_readme_example_runs(tmp_path, monkeypatch):
    (code,) = examples(ROOT / "README.md")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md:example", "exec"), {"__name__": "__docs__"})
