"""`--config-file FILE.toml`: option values from a file reach the run, the command line wins, bad files exit 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edpilot.cli import app

runner = CliRunner()


def _toml(tmp_path, text: str):
    path = tmp_path / "edpilot.toml"
    path.write_text(text)
    return str(path)


def test_file_sets_the_budget_and_the_command_line_wins(tmp_path):
    cfg = _toml(tmp_path, "budget = 3\njson = true\n")
    r = runner.invoke(app, ["tune", "--config-file", cfg])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rounds"] == 3
    r = runner.invoke(app, ["tune", "--config-file", cfg, "--budget", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rounds"] == 2


def test_command_table_beats_the_top_level_and_values_reach_the_run_log(tmp_path):
    log = tmp_path / "run.jsonl"
    cfg = _toml(
        tmp_path,
        f"""
arrival-rate = 9.0
output_tokens = 40
budget = 1
[tune]
arrival_rate = 2.5
freqs = [612, 930.75]
batches = "4,8"
output = "{log}"
strategy = "grid"
[serve]
port = 1  # another command's table: left to it
""",
    )
    r = runner.invoke(app, ["tune", "--config-file", cfg, "--json", "--seed", "4"])
    assert r.exit_code == 0, r.output
    header = json.loads(log.read_text().splitlines()[0])
    assert header["arrival_rate_per_s"] == 2.5 and header["output_tokens"] == 40
    assert header["freqs_mhz"] == [612.0, 930.75] and header["batch_sizes"] == [4, 8]
    assert header["strategy"] == "grid" and header["seed"] == 4
    assert json.loads(r.stdout)["rounds"] == 1


def test_profile_takes_its_required_output_from_the_file(tmp_path):
    table = tmp_path / "profile.csv"
    cfg = _toml(tmp_path, f'[profile]\noutput = "{table}"\nfreqs = "930.75"\nbatches = [2]\njson = true\n')
    r = runner.invoke(app, ["profile", "--config-file", cfg])
    assert r.exit_code == 0, r.output
    rows = [line for line in table.read_text().splitlines() if line and not line.startswith("#")]
    assert rows[0] == "freq_mhz,batch_size,latency_s,energy_j"
    assert len(rows) > 1 and all(row.startswith("930.75,2,") for row in rows[1:])  # the one config asked for


@pytest.mark.parametrize(
    "command,text,expected",
    [
        ("tune", "budgett = 3\n", "'budgett' is not an option of `tune` (options: arrival-rate, arrivals,"),
        ("tune", "[tune]\nport = 8000\n", "[tune] 'port' is not an option of `tune`"),
        ("serve", "budgett = 3\n", "'budgett' is not an option of `serve`"),
        ("bench", "arrival-rate = 3\n", "'arrival-rate' is not an option of `bench`"),
        ("tune", "[tunes]\nbudget = 1\n", "[tunes] is not a command table (tables: tune, serve, profile, bench"),
        ("tune", "budget = \n", "not valid TOML"),
        ("tune", 'budget = "many"\n', "budget = 'many': Invalid value for '--budget'"),
        ("serve", 'port = "http"\n', "port = 'http': Invalid value for '--port'"),
    ],
)
def test_bad_files_are_one_line_and_exit_2(tmp_path, command, text, expected):
    r = runner.invoke(app, [command, "--config-file", _toml(tmp_path, text)])
    assert r.exit_code == 2
    assert expected in r.stderr and "Traceback" not in r.output
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("edpilot: error: --config-file ")


def test_missing_and_undecodable_files_exit_2(tmp_path):
    r = runner.invoke(app, ["tune", "--config-file", str(tmp_path / "nope.toml")])
    assert r.exit_code == 2 and "nope.toml: cannot read it (No such file or directory)" in r.stderr
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"budget = 3\n\xff\xfe\n")
    r = runner.invoke(app, ["tune", "--config-file", str(binary)])
    assert r.exit_code == 2 and "not UTF-8 text" in r.stderr


def test_help_names_the_option():
    r = runner.invoke(app, ["tune", "--help"], env={"COLUMNS": "200"})
    words = " ".join(line.strip("│ ") for line in r.stdout.splitlines())
    assert "--config-file" in words and "TOML" in words and "wins." in words
