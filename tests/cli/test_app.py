"""The `edpilot` app itself: --version, shell completion, and the help every --engine option gives."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

import edpilot
from edpilot.cli import app
from edpilot.engine import engine_kinds

runner = CliRunner()


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout == f"edpilot {edpilot.__version__}\n"
    out = subprocess.run([sys.executable, "-m", "edpilot", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "edpilot 0.1.0"


def test_show_completion_prints_a_bash_script():
    r = runner.invoke(app, ["--show-completion", "bash"], prog_name="edpilot")
    assert r.exit_code == 0
    assert (
        "_EDPILOT_COMPLETE=complete_bash" in r.stdout
        and "complete -o default -F _edpilot_completion edpilot" in r.stdout
    )


@pytest.mark.parametrize(
    "words,cword,expected", [("edpilot t", 1, {"top", "tune"}), ("edpilot top --du", 2, {"--duration"})]
)
def test_completion_completes_commands_and_options(words, cword, expected):
    env = {"_EDPILOT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    r = runner.invoke(app, [], prog_name="edpilot", env=env)
    assert set(r.stdout.split()) == expected


def _commands_with_engine() -> list[tuple[str, str]]:
    """(command, help of its --engine) for every command that takes --engine."""
    group = typer.main.get_command(app)
    return [
        (name, param.help or "")
        for name, command in group.commands.items()  # type: ignore[attr-defined]
        for param in command.params
        if "--engine" in getattr(param, "opts", ())
    ]


def test_every_engine_option_lists_every_engine_kind():
    found = _commands_with_engine()
    assert {name for name, _ in found} >= {"tune", "profile", "serve"}
    kinds = [usage.partition(":")[0] for usage in engine_kinds()]
    assert "llamacpp" in kinds
    for name, help_text in found:
        for kind in kinds:
            assert f"{kind}:" in help_text or kind == "sim" and "sim" in help_text, (name, kind)
