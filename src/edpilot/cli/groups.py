"""Option groups: a frozen dataclass whose fields are typer options, declared once and spliced into commands.

    @dataclass(frozen=True)
    class DeviceSpec:
        PANEL: ClassVar[str] = "Device"           # the --help panel its options are listed under
        device: DeviceOpt = "sim"

    @with_groups
    def tune_command(device: DeviceSpec, budget: BudgetOpt = 30) -> None: ...

`with_groups` replaces every parameter whose type is a group by the group's fields, as options, and at call
time builds the group from their values (its `__post_init__` checks them, once) and passes the built group;
`command.option_groups` lists the groups a command takes (`GroupUse`).
`Annotated[Group, Without("a"), Defaults(b=5.0)]` takes a group less some fields (they keep the dataclass
default and are not options) or with other defaults. A field that two groups both declare (same name, same
type, same default) is one option that feeds both. Adding an option to a group is one line: a field.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

import typer

F = TypeVar("F", bound=Callable[..., Any])


class Without:
    """`Annotated[Group, Without("json_output")]`: the group less these fields (they keep their defaults)."""

    def __init__(self, *names: str) -> None:
        self.names = names


class Defaults:
    """`Annotated[Group, Defaults(max_wait_s=5.0)]`: the group with other defaults for these options."""

    def __init__(self, **values: Any) -> None:
        self.values = values


@dataclasses.dataclass(frozen=True)
class GroupUse:
    """How a command takes one group: its parameter, the group class and the option names it feeds."""

    parameter: str
    group: type
    options: tuple[str, ...]


def is_group(hint: Any) -> bool:
    """Whether `hint` is an option group: a dataclass class with a PANEL."""
    return isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(getattr(hint, "PANEL", None), str)


def group_parameters(group: type, *tweaks: Any) -> list[inspect.Parameter]:
    """The options a group adds to a command (keyword-only, listed under the group's help panel)."""
    without = {name for tweak in tweaks if isinstance(tweak, Without) for name in tweak.names}
    defaults = {k: v for tweak in tweaks if isinstance(tweak, Defaults) for k, v in tweak.values.items()}
    fields = [f for f in dataclasses.fields(group) if f.init]
    unknown = (without | set(defaults)) - {f.name for f in fields}
    if unknown:
        raise TypeError(f"{group.__name__} has no option {', '.join(sorted(unknown))}")
    hints = get_type_hints(group, include_extras=True)
    return [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=defaults.get(f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default),
            annotation=_in_panel(hints[f.name], group.PANEL),  # type: ignore[attr-defined]
        )
        for f in fields
        if f.name not in without
    ]


def _in_panel(hint: Any, panel: str) -> Any:
    """`Annotated[T, typer.Option(...)]` with the option listed under `panel` (a copy: the original is shared)."""
    base, *metadata = get_args(hint)
    infos = [copy.copy(m) if isinstance(m, typer.models.OptionInfo) else m for m in metadata]
    for info in infos:
        if isinstance(info, typer.models.OptionInfo) and info.rich_help_panel is None:
            info.rich_help_panel = panel
    return Annotated[(base, *infos)]


def _check_shared(command: str, uses: list[GroupUse]) -> None:
    """A field one group leaves out and another takes would reach one group and not the other: refused."""
    for use in uses:
        left_out = {f.name for f in dataclasses.fields(use.group) if f.init} - set(use.options)
        taken = {name for other in uses if other is not use for name in other.options}
        if left_out & taken:
            raise TypeError(
                f"{command}: {use.parameter} leaves out {', '.join(sorted(left_out & taken))}, "
                "which another group takes; take it in both or in neither"
            )


def with_groups(func: F) -> F:
    """Splice the options of every group parameter of `func` into its signature; hand it the built groups."""
    hints = get_type_hints(func, include_extras=True)
    params: dict[str, inspect.Parameter] = {}
    declared: dict[str, tuple[Any, Any]] = {}  # option name -> (declaration before the panel, default)
    uses: list[GroupUse] = []
    own: list[str] = []

    def add(param: inspect.Parameter, declaration: Any) -> None:
        if param.name in params:
            if declared[param.name] != (declaration, param.default):
                raise TypeError(f"{func.__name__}: option {param.name!r} is declared twice, differently")
            return  # a field two groups share: one option feeds both
        params[param.name] = param
        declared[param.name] = (declaration, param.default)

    for name, param in inspect.signature(func).parameters.items():
        hint = hints.get(name, param.annotation)
        group, *tweaks = get_args(hint) if get_origin(hint) is Annotated else (hint,)
        if not is_group(group):
            add(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hint), hint)
            own.append(name)
            continue
        group_hints = get_type_hints(group, include_extras=True)
        options = group_parameters(group, *tweaks)
        for option in options:
            add(option, group_hints[option.name])
        uses.append(GroupUse(name, group, tuple(option.name for option in options)))
    _check_shared(func.__name__, uses)

    @functools.wraps(func)
    def wrapper(**values: Any) -> Any:
        built = {use.parameter: use.group(**{name: values[name] for name in use.options}) for use in uses}
        return func(**{name: values[name] for name in own if name in values}, **built)

    signature = inspect.Signature(list(params.values()))
    wrapper.option_groups = tuple(uses)  # type: ignore[attr-defined]
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = {name: param.annotation for name, param in signature.parameters.items()}
    return wrapper  # type: ignore[return-value]
