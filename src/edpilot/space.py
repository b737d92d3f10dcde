"""Configurations (named knob levels, batch size) and the grid of named axes they are searched on."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edpilot.errors import ConfigError
from edpilot.limits import bounded

PAPER_BATCH_SIZES: tuple[int, ...] = (4, 8, 12, 16, 20, 24, 28)
PAPER_FREQ_LEVELS = 7


KNOB_UNITS = ("mhz",)  # every knob name ends in its unit
DECODE_PREFIX = "decode_"  # `decode_gpu_mhz`: the level the engine switches to for decode (--phase-clocks)
KNOB_LABELS = {"gpu_mhz": "GPU", "emc_mhz": "EMC", "cpu_mhz": "CPU"}
_KNOB_RANK = tuple(KNOB_LABELS)  # the order knobs are listed and set in: GPU first
_KNOB_NAME = re.compile(rf"({DECODE_PREFIX})?(?!{DECODE_PREFIX})[a-z][a-z0-9]*_({'|'.join(KNOB_UNITS)})")


def knob_order(name: str) -> tuple[bool, int, str]:
    """Sort key of a knob name: device knobs before decode levels, GPU, EMC, CPU, then the rest by name."""
    base = name.removeprefix(DECODE_PREFIX)
    rank = _KNOB_RANK.index(base) if base in _KNOB_RANK else len(_KNOB_RANK)
    return (name.startswith(DECODE_PREFIX), rank, base)


def is_knob_name(name: str) -> bool:
    """Whether `name` names a knob: its unit at the end (`gpu_mhz`, `decode_emc_mhz`; not `actual_freq_mhz`)."""
    return _KNOB_NAME.fullmatch(name) is not None


def knob_label(name: str) -> str:
    """'GPU', 'EMC', 'decode GPU', or the name itself for a knob without a short label."""
    base = name.removeprefix(DECODE_PREFIX)
    label = KNOB_LABELS.get(base, base)
    return f"decode {label}" if name.startswith(DECODE_PREFIX) else label


def _check_knob_name(name: object) -> str:
    if not isinstance(name, str) or not is_knob_name(name):
        raise ConfigError(f"a knob is named with its unit (gpu_mhz, emc_mhz), got {name!r}")
    return name


@dataclass(frozen=True, order=True)
class Config:
    """One setting to serve at: named knob levels and a batch size.

    `knobs` holds (name, level) pairs in knob order (`knob_order`: GPU first); a knob the config does not set
    (the device's own clock, or a device without the knob) is absent. `decode_*` levels are not device knobs:
    the engine switches to them for decode (--phase-clocks). Build one with `Config.of(4, gpu_mhz=816.0)`.
    """

    knobs: tuple[tuple[str, float], ...]
    batch_size: int

    def __post_init__(self) -> None:
        if not isinstance(self.knobs, tuple):
            raise ConfigError(
                f"Config(knobs, batch_size) takes (name, level) pairs, got {self.knobs!r}; "
                "use Config.of(batch_size, gpu_mhz=...)"
            )
        pairs = []
        for pair in self.knobs:
            name, level = pair
            _check_knob_name(name)
            if isinstance(level, bool) or not isinstance(level, int | float) or not (level > 0 and np.isfinite(level)):
                raise ConfigError(f"{name} must be a finite level > 0, got {level}")
            pairs.append((name, float(level)))
        names = [n for n, _ in pairs]
        if len(set(names)) != len(names):
            raise ConfigError(f"a knob is named twice: {', '.join(names)}")
        object.__setattr__(self, "knobs", tuple(sorted(pairs, key=lambda p: knob_order(p[0]))))
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ConfigError(f"batch size must be a whole number >= 1, got {self.batch_size}")

    @classmethod
    def of(cls, batch_size: int, **levels: float | None) -> Config:
        """`Config.of(4, gpu_mhz=816.0, emc_mhz=2133.0)`; a level of None leaves that knob out."""
        return cls(tuple((name, level) for name, level in levels.items() if level is not None), batch_size)

    def level(self, name: str) -> float | None:
        """The level of knob `name`, or None when the config does not set it."""
        return next((level for n, level in self.knobs if n == name), None)

    @property
    def freq_mhz(self) -> float | None:
        """The GPU level (MHz); None: the device's own clock. Kept while callers move to `level("gpu_mhz")`."""
        return self.level("gpu_mhz")

    def device_levels(self) -> dict[str, float]:
        """The device knobs to set before a batch (the prefill levels under --phase-clocks), in knob order."""
        return {n: level for n, level in self.knobs if not n.startswith(DECODE_PREFIX)}

    def decode_levels(self) -> dict[str, float]:
        """The levels the engine switches to for decode, keyed by device knob: {"gpu_mhz": 612.0}; {} if none."""
        return {n.removeprefix(DECODE_PREFIX): level for n, level in self.knobs if n.startswith(DECODE_PREFIX)}

    def fields(self) -> dict[str, float | int | None]:
        """The config as a record stores it: `freq_mhz` (the GPU level, None: the device's clock), every other
        knob by its name, then `batch_size`."""
        others = {n: level for n, level in self.knobs if n != "gpu_mhz"}
        return {"freq_mhz": self.freq_mhz, **others, "batch_size": self.batch_size}

    @classmethod
    def from_fields(cls, d: Mapping[str, Any]) -> Config:
        """The config of a record (`fields`): `freq_mhz` or `gpu_mhz` for the GPU, every `*_mhz` knob by name
        (`actual_*` read-backs are not knobs), `batch_size`; a knob at null is left out."""
        levels = {k: v for k, v in d.items() if k != "freq_mhz" and is_knob_name(k) and v is not None}
        if "gpu_mhz" not in levels and d.get("freq_mhz") is not None:
            levels["gpu_mhz"] = d["freq_mhz"]
        return cls.of(d["batch_size"], **levels)

    def __str__(self) -> str:
        if [n for n, _ in self.knobs] == ["gpu_mhz"]:
            return f"({self.knobs[0][1]:g} MHz, batch {self.batch_size})"
        parts = [f"{level:g} MHz {knob_label(n)}" for n, level in self.knobs]  # every knob is in MHz (KNOB_UNITS)
        return f"({', '.join([*parts, f'batch {self.batch_size}'])})"


@dataclass(frozen=True)
class Axis:
    """One searched knob: its name and sorted levels; `(None,)`: not searched, the device's own level."""

    name: str
    levels: tuple[float | None, ...]

    def __post_init__(self) -> None:
        _check_knob_name(self.name)
        if not self.levels:
            raise ConfigError(f"{self.name} has no levels")
        if None in self.levels:
            if len(self.levels) != 1:
                raise ConfigError(f"{self.name}: an axis left at the device's level has exactly one entry (None)")
            return
        levels = tuple(sorted(set(float(v) for v in self.levels)))  # type: ignore[arg-type]
        if not all(v > 0 and np.isfinite(v) for v in levels):
            raise ConfigError(f"{self.name} levels must be finite and > 0, got {_fmt(levels)}")
        object.__setattr__(self, "levels", levels)

    @property
    def searched(self) -> bool:
        """More than one level to choose from."""
        return len(self.levels) > 1


@dataclass(frozen=True)
class ConfigSpace:
    """The grid: named knob axes (in the order the device sets them, GPU first) × sorted batch sizes.

    Iteration is the product of the axes then batch, the last fastest: GPU-major, batch-minor on two axes.
    """

    axes: tuple[Axis, ...]
    batch_sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.axes, tuple) or not all(isinstance(a, Axis) for a in self.axes):
            raise ConfigError(
                "ConfigSpace(axes, batch_sizes) takes Axis objects; use ConfigSpace.grid(freqs_mhz, batch_sizes)"
            )
        names = [a.name for a in self.axes]
        if len(set(names)) != len(names):
            raise ConfigError(f"an axis is named twice: {', '.join(names)}")
        if not self.batch_sizes:
            raise ConfigError("the grid needs at least one frequency and one batch size")
        object.__setattr__(self, "batch_sizes", tuple(sorted(set(int(b) for b in self.batch_sizes))))
        if self.batch_sizes[0] < 1:
            raise ConfigError(f"batch sizes must be >= 1, got {self.batch_sizes[0]}")

    @classmethod
    def grid(cls, freqs_mhz: Sequence[float | None], batch_sizes: Sequence[int]) -> ConfigSpace:
        """The two-axis grid: GPU levels (`(None,)`: no clock tuned) × batch sizes."""
        if not freqs_mhz or not batch_sizes:
            raise ConfigError("the grid needs at least one frequency and one batch size")
        return cls((Axis("gpu_mhz", tuple(freqs_mhz)),), tuple(batch_sizes))

    def axis(self, name: str) -> Axis | None:
        """The axis of knob `name`, or None when the grid has none."""
        return next((a for a in self.axes if a.name == name), None)

    @property
    def knob_names(self) -> tuple[str, ...]:
        """The axes' names, in order."""
        return tuple(a.name for a in self.axes)

    @property
    def freqs_mhz(self) -> tuple[float | None, ...]:
        """The GPU levels; `(None,)` without a GPU axis. Kept while callers move to `axis("gpu_mhz")`."""
        gpu = self.axis("gpu_mhz")
        return gpu.levels if gpu is not None else (None,)

    def __iter__(self) -> Iterator[Config]:
        names = self.knob_names
        for levels in itertools.product(*(a.levels for a in self.axes)):
            for b in self.batch_sizes:
                yield Config.of(b, **dict(zip(names, levels, strict=True)))

    def __len__(self) -> int:
        return int(np.prod([len(a.levels) for a in self.axes], dtype=int)) * len(self.batch_sizes)

    def __contains__(self, config: object) -> bool:
        return isinstance(config, Config) and self._problem(config) is None

    @property
    def configs(self) -> list[Config]:
        """Every config, in iteration order (GPU-major, batch-minor)."""
        return list(self)

    def positions(self) -> np.ndarray:
        """Each config's position on the grid: its level's index on every axis, then its batch's (configs × axes+1)."""
        return np.array(
            [
                [*(a.levels.index(c.level(a.name)) for a in self.axes), self.batch_sizes.index(c.batch_size)]
                for c in self
            ]
        ).reshape(len(self), len(self.axes) + 1)

    def index(self, config: Config) -> int:
        """Position of `config` in `configs` (mixed radix over the axes, then batch)."""
        self.validate(config)
        i = 0
        for a in self.axes:
            i = i * len(a.levels) + a.levels.index(config.level(a.name))
        return i * len(self.batch_sizes) + self.batch_sizes.index(config.batch_size)

    def validate(self, config: Config) -> Config:
        """Return `config` if it is on the grid, else raise ConfigError naming the axis and its levels."""
        problem = self._problem(config)
        if problem is not None:
            raise ConfigError(problem)
        return config

    def _problem(self, config: Config) -> str | None:
        for a in self.axes:
            level = config.level(a.name)
            if level not in a.levels:
                if a.name == "gpu_mhz":
                    what = "a device clock" if level is None else f"{level:g} MHz"
                    return f"{what} is not a frequency of the grid; levels: {_fmt(a.levels)}"
                what = "the device's level" if level is None else f"{level:g}"
                return f"{a.name} {what} is not a level of the grid; levels: {_fmt(a.levels)}"
        extra = [n for n, _ in config.knobs if self.axis(n) is None]
        if extra:
            return f"the grid has no {', '.join(extra)} axis; axes: {', '.join(self.knob_names) or 'none'}"
        if config.batch_size not in self.batch_sizes:
            return f"batch size {config.batch_size} is not in the grid; batch sizes: {_fmt(self.batch_sizes)}"
        return None

    def complete(self, config: Config) -> Config:
        """`config` with every axis it leaves out at that axis's top level (`--baseline 930.75,28` on a grid that
        also searches the memory clock: the memory clock at its top, as the default baseline has it)."""
        levels = {a.name: a.levels[-1] for a in self.axes if config.level(a.name) is None}
        return Config.of(config.batch_size, **dict(config.knobs), **levels)

    def baseline(self) -> Config:
        """The paper's default configuration, extended: every knob at its top level, largest batch."""
        return Config.of(self.batch_sizes[-1], **{a.name: a.levels[-1] for a in self.axes})


def spread_levels(levels_mhz: Sequence[float], count: int) -> tuple[float, ...]:
    """Pick `count` of the device's exact levels spread evenly over its range (always lowest and highest)."""
    levels = sorted(levels_mhz)
    if count >= len(levels):
        return tuple(levels)
    idx = np.unique(np.round(np.linspace(0, len(levels) - 1, count)).astype(int))
    return tuple(levels[i] for i in idx)


def match_levels(wanted_mhz: Sequence[float], levels_mhz: Sequence[float]) -> tuple[float, ...]:
    """Map each wanted frequency onto an exact device level (within 0.5 MHz), or raise naming the levels."""
    out = []
    for w in wanted_mhz:
        near = min(levels_mhz, key=lambda lv: abs(lv - w))
        if abs(near - w) > 0.5:
            raise ConfigError(
                f"{w:g} MHz is not a level of this device (nearest: {near:g}); levels: {_fmt(levels_mhz)}"
            )
        out.append(near)
    return tuple(out)


def parse_number_list(text: str, *, what: str) -> list[float]:
    """Parse '4,8,16' into numbers; raise ConfigError with `what` named on bad input."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be a comma-separated list of numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} is empty")
    if not all(np.isfinite(v) for v in values):
        raise ConfigError(f"{what} must hold finite numbers, got {text!r}")
    return values


def parse_knob_levels(
    text: str, levels_mhz: Sequence[float], *, option: str, read_only_reason: str | None = None
) -> tuple[float, ...]:
    """The levels a grid option such as `--emcs all|LIST` picks of a knob: 'all' or a list, each an exact level.

    A knob that cannot be turned (`read_only_reason`) or has no levels cannot be searched: ConfigError saying why.
    """
    if read_only_reason is not None:
        raise ConfigError(f"{option} cannot be searched: {read_only_reason}")
    if not levels_mhz:
        raise ConfigError(f"{option} cannot be searched: this device lists no levels for it")
    if text.strip() == "all":
        return tuple(sorted(levels_mhz))
    wanted = parse_number_list(text, what=option)
    try:
        picked = match_levels(wanted, levels_mhz)
    except ConfigError as exc:
        raise ConfigError(f"{option}: {exc}") from None
    return tuple(sorted(set(picked)))


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """Parse '4,8,16' into whole batch sizes within LIMITS (1 .. 1024)."""
    values = parse_number_list(text, what="--batches")
    return tuple(int(bounded(v, "batch_size", "--batches")) for v in values)


def parse_config(text: str, *, what: str = "--baseline") -> Config:
    """Parse 'FREQ_MHZ,BATCH' into a Config."""
    values = parse_number_list(text, what=what)
    if len(values) != 2:
        raise ConfigError(f"{what} must be FREQ_MHZ,BATCH, got {text!r}")
    return Config.of(int(bounded(values[1], "batch_size", what)), gpu_mhz=bounded(values[0], "freq_mhz", what))


def _fmt(values: Sequence[float | None]) -> str:
    return ", ".join("device clock" if v is None else f"{v:g}" for v in values)
