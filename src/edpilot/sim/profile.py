"""The profile table: measured (or simulated) per-batch samples, in the exchange format `edpilot profile` writes
and `--profile FILE.csv` replays: `# key: value` metadata lines, then one row per batch sample.

# device: jetson-agx-orin-64gb
# idle_power_w: 9.5
freq_mhz,emc_mhz,batch_size,latency_s,energy_j
1300.5,3199,1,2.91,41.7

One column per knob before `batch_size`: `freq_mhz` (the GPU level; `gpu_mhz` is read as the same) first, then
any other knob by its name (`emc_mhz`). A table with only `freq_mhz` is the two-axis table of earlier releases.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edpilot.errors import ProfileError
from edpilot.jsonfields import show
from edpilot.limits import LIMITS, bounded
from edpilot.space import Config, is_knob_name
from edpilot.textfile import read_lines

HEADER = "freq_mhz,batch_size,latency_s,energy_j"
MEASURED = ("batch_size", "latency_s", "energy_j")  # the columns after the knobs'
GPU_COLUMNS = ("freq_mhz", "gpu_mhz")


@dataclass(frozen=True)
class ProfileRow:
    """One measured batch: its config, service time (s) and device energy during it (J; None: no meter).

    `knobs` holds the levels of knobs besides the GPU's (`(("emc_mhz", 3199.0),)`), in column order.
    """

    freq_mhz: float
    batch_size: int
    latency_s: float
    energy_j: float | None
    knobs: tuple[tuple[str, float], ...] = ()

    @property
    def config(self) -> Config:
        """The config this row was measured at."""
        return Config.of(self.batch_size, gpu_mhz=self.freq_mhz, **dict(self.knobs))


@dataclass
class ProfileTable:
    """Samples grouped by config, plus `# key: value` metadata."""

    metadata: dict[str, str]
    rows: list[ProfileRow]
    source: Path | None = None
    _by_config: dict[Config, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len({r.energy_j is None for r in self.rows}) > 1:
            raise ProfileError(f"{self.source}: energy_j is given on some rows and empty on others")
        if len({tuple(n for n, _ in r.knobs) for r in self.rows}) > 1:
            raise ProfileError(f"{self.source}: the rows name different knobs")
        groups: dict[Config, list[tuple[float, float]]] = {}
        for r in self.rows:
            energy_j = math.nan if r.energy_j is None else r.energy_j
            groups.setdefault(r.config, []).append((r.latency_s, energy_j))
        self._by_config = {k: np.asarray(v) for k, v in groups.items()}

    @property
    def knob_names(self) -> tuple[str, ...]:
        """The knobs the table has a column for: `gpu_mhz` first."""
        return ("gpu_mhz", *(n for n, _ in self.rows[0].knobs)) if self.rows else ("gpu_mhz",)

    @property
    def has_energy(self) -> bool:
        """Whether the rows carry energy (a latency-only table comes from a device without a meter)."""
        return self.rows[0].energy_j is not None

    @property
    def configs(self) -> list[Config]:
        """Every config with at least one sample, sorted."""
        return sorted(self._by_config)

    def has(self, config: Config) -> bool:
        """Whether the table has samples of exactly `config`."""
        return config in self._by_config

    def levels_of(self, name: str) -> tuple[float, ...]:
        """The levels of knob `name` present in the table, ascending; () when it has no such column."""
        return tuple(sorted({level for c in self._by_config if (level := c.level(name)) is not None}))

    @property
    def freqs_mhz(self) -> tuple[float, ...]:
        """Frequencies present in the table, ascending."""
        return self.levels_of("gpu_mhz")

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Batch sizes present in the table, ascending."""
        return tuple(sorted({c.batch_size for c in self._by_config}))

    @property
    def idle_power_w(self) -> float:
        """Device power with nothing running (W), from the `idle_power_w` metadata line."""
        try:
            value = float(self.metadata["idle_power_w"])
        except (KeyError, ValueError):
            raise ProfileError(
                f"{self.source}: needs a metadata line '# idle_power_w: WATTS' (device power when idle)"
            ) from None
        if not 0 <= value <= LIMITS["power_w"].maximum:
            raise ProfileError(
                f"{self.source}: idle_power_w must be between 0 and {LIMITS['power_w'].maximum:g} W, got {value:g}"
            )
        return value

    def samples(self, config: Config) -> np.ndarray:
        """Array of (latency_s, energy_j) rows for a config (the nearest batch size at its knob levels)."""
        if config not in self._by_config:
            at_levels = [c.batch_size for c in self._by_config if c.knobs == config.knobs]
            if not at_levels:
                where = str(Config.of(1, **dict(config.knobs))).removesuffix(", batch 1)").removeprefix("(")
                raise ProfileError(f"the profile has no samples at {where}")
            config = Config(config.knobs, min(at_levels, key=lambda b: abs(b - config.batch_size)))
        return self._by_config[config]


def read_profile(path: str | os.PathLike[str]) -> ProfileTable:
    """Read and validate a profile table; raise ProfileError naming the file, line and problem."""
    path = Path(path)
    lines = read_lines(path, what="profile", error=ProfileError)
    metadata: dict[str, str] = {}
    rows: list[ProfileRow] = []
    knob_columns: tuple[str, ...] | None = None
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                metadata[key.strip()] = value.strip()
            continue
        if knob_columns is None:
            knob_columns = _knob_columns(line, where=f"{path}:{lineno}")
            continue
        rows.append(_parse_row(line, knob_columns, where=f"{path}:{lineno}"))
    if not rows:
        raise ProfileError(f"{path}: no samples (expected the header '{HEADER}' and rows under it)")
    table = ProfileTable(metadata=metadata, rows=rows, source=path)
    if len(table.configs) < 2:
        raise ProfileError(f"{path}: only one config (needs at least two to choose between)")
    return table


def _knob_columns(line: str, *, where: str) -> tuple[str, ...]:
    """The knob columns of a header line: the GPU's (`freq_mhz` or `gpu_mhz`) first, then other knobs by name."""
    names = [p.strip() for p in line.split(",")]
    knobs, measured = names[: -len(MEASURED)], tuple(names[-len(MEASURED) :])
    if measured != MEASURED or not knobs or knobs[0] not in GPU_COLUMNS:
        raise ProfileError(
            f"{where}: header must be '{HEADER}' (knob columns such as emc_mhz after freq_mhz), got '{line}'"
        )
    for name in knobs[1:]:
        if not is_knob_name(name) or name in GPU_COLUMNS or knobs.count(name) > 1:
            raise ProfileError(f"{where}: header column {name!r} is not a knob (a name ending in _mhz), or twice")
    return ("gpu_mhz", *knobs[1:])


def _parse_row(line: str, knob_columns: tuple[str, ...], *, where: str) -> ProfileRow:
    parts = [p.strip() for p in line.split(",")]
    columns = len(knob_columns) + len(MEASURED)
    if len(parts) != columns:
        header = ",".join(("freq_mhz", *knob_columns[1:], *MEASURED))
        raise ProfileError(f"{where}: expected {columns} values ({header}), got {len(parts)}")
    k = len(knob_columns)
    try:
        levels = [float(p) for p in parts[:k]]
        b, lat = float(parts[k]), float(parts[k + 1])
        e = None if parts[k + 2] == "" else float(parts[k + 2])  # empty: measured without an energy meter
    except ValueError:
        raise ProfileError(f"{where}: non-numeric value in {show(line)}") from None
    for name, level in zip(knob_columns, levels, strict=True):
        bounded(level, "freq_mhz", f"{where}: {'freq_mhz' if name == 'gpu_mhz' else name}", error=ProfileError)
    bounded(b, "batch_size", f"{where}: batch_size", error=ProfileError)
    bounded(lat, "latency_s", f"{where}: latency_s", error=ProfileError)
    if e is not None:
        bounded(e, "energy_j", f"{where}: energy_j", error=ProfileError)
    others = tuple(zip(knob_columns[1:], levels[1:], strict=True))
    return ProfileRow(freq_mhz=levels[0], batch_size=int(b), latency_s=lat, energy_j=e, knobs=others)


def format_profile(metadata: Mapping[str, object], rows: Iterable[ProfileRow]) -> str:
    """The table as text: metadata lines, header (`freq_mhz`, other knobs, measured columns), one row per sample."""
    rows = list(rows)
    others = tuple(n for n, _ in rows[0].knobs) if rows else ()
    out = [f"# {k}: {v}" for k, v in metadata.items()] + [",".join(("freq_mhz", *others, *MEASURED))]
    out += [
        ",".join(
            (
                *(f"{level:g}" for level in (r.freq_mhz, *(v for _, v in r.knobs))),
                str(r.batch_size),
                f"{r.latency_s:.6g}",
                "" if r.energy_j is None else format(r.energy_j, ".6g"),
            )
        )
        for r in rows
    ]
    return "\n".join(out) + "\n"


PROFILE_MODE = 0o644


def write_profile(path: str | os.PathLike[str], metadata: Mapping[str, object], rows: Iterable[ProfileRow]) -> None:
    """Write the table atomically (temp file, then rename), readable by everyone (0644) even when root writes it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(format_profile(metadata, rows))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, PROFILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        raise ProfileError(f"cannot write the profile {path}: {exc.strerror or exc}") from None
