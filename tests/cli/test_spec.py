"""The run specification: tune, serve and profile take their shared options from groups declared once, so the
options agree (name, default, help); each command lists only its own; groups build, check and combine right."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Annotated, ClassVar

import pytest
import typer
from typer.testing import CliRunner

from edpilot.cli import app
from edpilot.cli.groups import Defaults, Without, with_groups
from edpilot.cli.profile import profile_command
from edpilot.cli.serve import serve_command
from edpilot.cli.spec import DEFAULT_OUTPUT_TOKENS
from edpilot.cli.tune import tune_command

runner = CliRunner()
COMMANDS = {"tune": tune_command, "serve": serve_command, "profile": profile_command}


def _click_options(name: str) -> dict[str, typer.core.TyperOption]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {param.name: param for param in command.params}


def _group_options() -> dict[str, dict[str, typer.core.TyperOption]]:
    """option name -> {command: its click option}, for every option a command takes from a group."""
    found: dict[str, dict[str, typer.core.TyperOption]] = {}
    for name, func in COMMANDS.items():
        options = _click_options(name)
        for use in func.option_groups:
            for option in use.options:
                found.setdefault(option, {})[name] = options[option]
    return found


def test_shared_options_have_one_name_default_and_help():
    found = _group_options()
    differences = set()
    for option, by_command in found.items():
        reference = by_command["tune"] if "tune" in by_command else next(iter(by_command.values()))
        for command, param in by_command.items():
            for what in ("opts", "secondary_opts", "default", "help", "required", "is_flag"):
                if getattr(param, what) != getattr(reference, what):
                    differences.add((command, option, what))
    # The one declared difference: a live server flushes a partial batch after 5 s (Defaults(max_wait_s=5.0)).
    assert differences == {("serve", "max_wait_s", "default")}
    assert found["max_wait_s"]["serve"].default == 5.0 and found["max_wait_s"]["tune"].default is None
    in_all = {option for option, by_command in found.items() if len(by_command) == 3}
    assert len(in_all) == 18 and {"device", "engine", "seed", "freqs", "emcs", "phase_clocks", "batches"} <= in_all
    assert {option for option, by_command in found.items() if set(by_command) == {"tune", "serve"}} == {
        "profile", "baseline", "strategy", "budget", "objective", "energy_scope", "paper", "slo_p95",
        "slo_ttft_p95", "power_cap", "batching", "requests_per_round", "max_wait_s", "output", "overwrite", "prior",
    }  # fmt: skip


def test_output_tokens_default_agrees():
    found = _group_options()["output_tokens"]
    assert set(found) == {"tune", "profile"}
    assert found["tune"].default == found["profile"].default == DEFAULT_OUTPUT_TOKENS == 70


def test_same_name_own_options_are_the_known_ones():
    """An option a command declares itself under a group option's name: serve's --model-name is the id clients
    use (its engine's upstream name is --upstream-model), profile's --output is the table it writes."""
    found = _group_options()
    clashes = set()
    for name, func in COMMANDS.items():
        grouped = {o for use in func.option_groups for o in use.options}
        clashes |= {(name, option) for option in _click_options(name) if option in found and option not in grouped}
    assert clashes == {("serve", "model_name"), ("profile", "output")}


def test_each_command_lists_only_its_own_options():
    """Parameters of each command's function: 41, 46 and 25 before the groups."""
    counts = {name: len(inspect.signature(inspect.unwrap(func)).parameters) for name, func in COMMANDS.items()}
    assert counts == {"tune": 7, "serve": 20, "profile": 9}
    click_counts = {name: len(_click_options(name)) for name in COMMANDS}
    assert click_counts == {"tune": 44, "serve": 50, "profile": 27}  # every option (serve: --yield-cpu)
    assert [use.parameter for use in tune_command.option_groups] == ["device", "engine", "workload", "search", "out"]


def test_every_option_has_help_and_tune_help_shows_the_groups():
    for name in COMMANDS:
        assert all(param.help for param in _click_options(name).values()), name
    r = runner.invoke(app, ["tune", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    panels = [line.strip("╭─ ").split(" ")[0] for line in r.stdout.splitlines() if line.startswith("╭─")]
    assert panels == ["Options", "Device", "Engine", "Workload", "Search", "Output"]
    for flag in ("--arrival-rate", "--max-wait-s,--max-wait", "--governor-baseline", "--fixed-output-length"):
        assert flag in r.stdout


def test_profile_writes_70_output_tokens_by_default(tmp_path):
    table = tmp_path / "p.csv"
    args = ["profile", "--output", str(table), "--freqs", "930.75", "--batches", "2", "--repeats", "1", "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "# output_tokens: 70" in table.read_text().splitlines()


def test_a_config_file_sets_a_group_option_under_either_name(tmp_path):
    for key in ("max-wait", "max_wait_s"):
        log = tmp_path / f"{key}.jsonl"
        cfg = tmp_path / f"{key}.toml"
        cfg.write_text(f'{key} = 7.5\nbudget = 1\noutput = "{log}"\n')
        r = runner.invoke(app, ["tune", "--config-file", str(cfg), "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(log.read_text().splitlines()[0])["extra"]["max_wait_s"] == 7.5
    r = runner.invoke(app, ["tune", "--config-file", str(cfg), "--json", "--max-wait", "2", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert json.loads(log.read_text().splitlines()[0])["extra"]["max_wait_s"] == 2.0


# The machinery, on groups of its own.

NameOpt = Annotated[str, typer.Option(help="A name.")]
CountOpt = Annotated[int, typer.Option(help="A count.")]
SeedOpt = Annotated[int, typer.Option(help="A seed.")]


@dataclass(frozen=True)
class First:
    PANEL: ClassVar[str] = "First"
    name: NameOpt = "a"
    count: CountOpt = 1
    seed: SeedOpt = 0


@dataclass(frozen=True)
class Second:
    PANEL: ClassVar[str] = "Second"
    seed: SeedOpt = 0


@dataclass(frozen=True)
class Clash:
    PANEL: ClassVar[str] = "Clash"
    seed: CountOpt = 0  # the same name as First.seed, declared otherwise


def _invoke(func, *args: str) -> list[object]:
    seen: list[object] = []
    toy = typer.Typer()
    toy.command()(with_groups(func(seen)))
    toy.command("other")(lambda: None)  # two commands: the toy's commands are named
    r = runner.invoke(toy, [func.__name__.removeprefix("make_"), *args])
    assert r.exit_code == 0, r.output
    return seen


def test_groups_are_built_with_tweaks_and_a_shared_field_feeds_both():
    def make_run(seen):
        def run(*, first: Annotated[First, Without("name"), Defaults(count=3)], second: Second, own: int = 0) -> None:
            seen.extend([first, second, own])

        return run

    first, second, own = _invoke(make_run, "--seed", "9", "--own", "4")
    assert first == First(name="a", count=3, seed=9) and second == Second(seed=9) and own == 4
    assert _invoke(make_run, "--count", "5")[0] == First(count=5)
    params = inspect.signature(with_groups(make_run([]))).parameters
    assert list(params) == ["count", "seed", "own"]  # seed once; name left out
    assert params["count"].default == 3


def test_a_group_option_declared_two_ways_or_an_unknown_tweak_is_refused():
    def clash(*, first: First, other: Clash) -> None: ...

    with pytest.raises(TypeError, match="'seed' is declared twice"):
        with_groups(clash)

    def unknown(*, first: Annotated[First, Without("nope")]) -> None: ...

    with pytest.raises(TypeError, match="First has no option nope"):
        with_groups(unknown)

    def half(*, first: Annotated[First, Without("seed")], second: Second) -> None: ...

    with pytest.raises(TypeError, match="first leaves out seed, which another group takes"):
        with_groups(half)
