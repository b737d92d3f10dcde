"""Configurations (GPU frequency, batch size) and the grid they are searched on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from edpilot.errors import ConfigError

PAPER_BATCH_SIZES: tuple[int, ...] = (4, 8, 12, 16, 20, 24, 28)
PAPER_FREQ_LEVELS = 7


@dataclass(frozen=True, order=True)
class Config:
    """One setting to serve at: GPU frequency in MHz (None: a device without a clock knob) and batch size."""

    freq_mhz: float | None
    batch_size: int

    def __post_init__(self) -> None:
        if self.freq_mhz is not None and not (self.freq_mhz > 0 and np.isfinite(self.freq_mhz)):
            raise ConfigError(f"frequency must be > 0 MHz, got {self.freq_mhz}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ConfigError(f"batch size must be a whole number >= 1, got {self.batch_size}")

    def __str__(self) -> str:
        if self.freq_mhz is None:
            return f"(batch {self.batch_size})"
        return f"({self.freq_mhz:g} MHz, batch {self.batch_size})"


@dataclass(frozen=True)
class ConfigSpace:
    """The grid: sorted frequency levels (MHz) × sorted batch sizes; `(None,)` when no clock is tuned."""

    freqs_mhz: tuple[float | None, ...]
    batch_sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.freqs_mhz or not self.batch_sizes:
            raise ConfigError("the grid needs at least one frequency and one batch size")
        if None in self.freqs_mhz:
            if len(self.freqs_mhz) != 1:
                raise ConfigError("a grid without a clock knob has exactly one frequency entry (None)")
        else:
            freqs = tuple(sorted(set(float(f) for f in self.freqs_mhz)))  # type: ignore[arg-type]
            if not all(f > 0 and np.isfinite(f) for f in freqs):
                raise ConfigError(f"frequencies must be finite and > 0 MHz, got {_fmt(freqs)}")
            object.__setattr__(self, "freqs_mhz", freqs)
        object.__setattr__(self, "batch_sizes", tuple(sorted(set(int(b) for b in self.batch_sizes))))
        if self.batch_sizes[0] < 1:
            raise ConfigError(f"batch sizes must be >= 1, got {self.batch_sizes[0]}")

    def __iter__(self) -> Iterator[Config]:
        for f in self.freqs_mhz:
            for b in self.batch_sizes:
                yield Config(f, b)

    def __len__(self) -> int:
        return len(self.freqs_mhz) * len(self.batch_sizes)

    def __contains__(self, config: object) -> bool:
        return (
            isinstance(config, Config) and config.freq_mhz in self.freqs_mhz and config.batch_size in self.batch_sizes
        )

    @property
    def configs(self) -> list[Config]:
        """Every config, frequency-major."""
        return list(self)

    def index(self, config: Config) -> int:
        """Position of `config` in `configs`."""
        self.validate(config)
        return self.freqs_mhz.index(config.freq_mhz) * len(self.batch_sizes) + self.batch_sizes.index(config.batch_size)

    def validate(self, config: Config) -> Config:
        """Return `config` if it is on the grid, else raise ConfigError naming the nearest values."""
        if config.freq_mhz not in self.freqs_mhz:
            what = "a device clock" if config.freq_mhz is None else f"{config.freq_mhz:g} MHz"
            raise ConfigError(f"{what} is not a frequency of the grid; levels: {_fmt(self.freqs_mhz)}")
        if config.batch_size not in self.batch_sizes:
            raise ConfigError(
                f"batch size {config.batch_size} is not in the grid; batch sizes: {_fmt(self.batch_sizes)}"
            )
        return config

    def baseline(self) -> Config:
        """The paper's default configuration: highest frequency, largest batch."""
        return Config(self.freqs_mhz[-1], self.batch_sizes[-1])


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
    """Parse '4,8,16' into whole batch sizes >= 1."""
    values = parse_number_list(text, what="--batches")
    if any(v != int(v) or v < 1 for v in values):
        raise ConfigError(f"--batches must be whole numbers >= 1, got {text!r}")
    return tuple(int(v) for v in values)


def parse_config(text: str, *, what: str = "--baseline") -> Config:
    """Parse 'FREQ_MHZ,BATCH' into a Config."""
    values = parse_number_list(text, what=what)
    if len(values) != 2:
        raise ConfigError(f"{what} must be FREQ_MHZ,BATCH, got {text!r}")
    return Config(values[0], int(values[1]) if values[1] == int(values[1]) else -1)


def _fmt(values: Sequence[float | None]) -> str:
    return ", ".join("device clock" if v is None else f"{v:g}" for v in values)
