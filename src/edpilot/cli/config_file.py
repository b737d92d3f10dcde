"""`--config-file FILE.toml`: option values from a TOML file, for any command that takes it; the command line wins.

Keys are the command's long option names, with dashes or underscores (`arrival-rate = 4`, `slo_p95 = 2.0`,
`json = true`), at the top level or under a table named after the command (`[tune]`, `[serve]`); a command's
table wins over the top level, and the tables of other commands are left to them. The values become the
command's click `default_map`, so they go through the same conversion and checks as typed values, and anything
given on the command line (or by an option's environment variable) overrides them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from edpilot.cli.common import fail

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

COMMAND_TABLES = ("tune", "serve", "profile", "bench")  # the commands that take --config-file


def load_config_file(ctx: typer.Context, path: Path | None) -> None:
    """Eager option callback: read `path` and set the values it gives as the command's defaults."""
    if path is None or ctx.resilient_parsing:  # resilient: shell completion, never fail there
        return
    command = ctx.info_name or ""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise fail(f"--config-file {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise fail(f"--config-file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"--config-file {path}: not valid TOML ({exc})") from None
    ctx.default_map = {**(ctx.default_map or {}), **option_values(ctx, data, command, path)}


def option_names(ctx: typer.Context) -> dict[str, Any]:
    """Long option name (dashes, no leading `--`) -> its click parameter, for every option of the command and
    every long name it has (`max-wait-s` and `max-wait`)."""
    names: dict[str, Any] = {}
    for param in ctx.command.params:
        if param.param_type_name != "option" or param.name in (None, "config_file"):
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                names[opt[2:]] = param
    return names


def option_values(ctx: typer.Context, data: dict[str, Any], command: str, path: Path) -> dict[str, Any]:
    """The file's values for `command`, keyed by parameter name; an unknown key or table is one error line."""
    names = option_names(ctx)
    top = {key: value for key, value in data.items() if not isinstance(value, dict)}
    for key, value in data.items():
        if isinstance(value, dict) and key not in COMMAND_TABLES:
            raise fail(
                f"--config-file {path}: [{key}] is not a command table (tables: {', '.join(COMMAND_TABLES)}; "
                "or give options at the top level)"
            )
    table = data.get(command, {})
    values: dict[str, Any] = {}
    for key, value in {**top, **table}.items():
        option = names.get(key.replace("_", "-"))
        if option is None:
            where = f"[{command}] " if key in table else ""
            raise fail(
                f"--config-file {path}: {where}{key!r} is not an option of `{command}` "
                f"(options: {', '.join(sorted(names))})"
            )
        if isinstance(value, list) and not option.multiple:  # `freqs = [600, 900]` is the comma list
            value = ",".join(map(str, value))
        if option.callback is None:  # convert once here, so a bad value names the file and the key
            try:
                option.process_value(ctx, value)
            except typer.BadParameter as exc:
                raise fail(f"--config-file {path}: {key} = {value!r}: {exc.format_message()}") from None
        values[option.name] = value
    return values
