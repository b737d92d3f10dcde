"""The profile table: measured (or simulated) per-batch samples, in the exchange format `edpilot profile` writes
and `--profile FILE.csv` replays: `# key: value` metadata lines, then one row per batch sample.

# device: jetson-agx-orin-64gb
# idle_power_w: 9.5
freq_mhz,batch_size,latency_s,energy_j
1300.5,1,2.91,41.7
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
from edpilot.textfile import read_lines

HEADER = "freq_mhz,batch_size,latency_s,energy_j"
COLUMNS = tuple(HEADER.split(","))


@dataclass(frozen=True)
class ProfileRow:
    """One measured batch: its config, service time (s) and device energy during it (J; None: no meter)."""

    freq_mhz: float
    batch_size: int
    latency_s: float
    energy_j: float | None


@dataclass
class ProfileTable:
    """Samples grouped by config, plus `# key: value` metadata."""

    metadata: dict[str, str]
    rows: list[ProfileRow]
    source: Path | None = None
    _by_config: dict[tuple[float, int], np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len({r.energy_j is None for r in self.rows}) > 1:
            raise ProfileError(f"{self.source}: energy_j is given on some rows and empty on others")
        groups: dict[tuple[float, int], list[tuple[float, float]]] = {}
        for r in self.rows:
            energy_j = math.nan if r.energy_j is None else r.energy_j
            groups.setdefault((r.freq_mhz, r.batch_size), []).append((r.latency_s, energy_j))
        self._by_config = {k: np.asarray(v) for k, v in groups.items()}

    @property
    def has_energy(self) -> bool:
        """Whether the rows carry energy (a latency-only table comes from a device without a meter)."""
        return self.rows[0].energy_j is not None

    @property
    def configs(self) -> list[tuple[float, int]]:
        """Every (freq_mhz, batch_size) with at least one sample, sorted."""
        return sorted(self._by_config)

    @property
    def freqs_mhz(self) -> tuple[float, ...]:
        """Frequencies present in the table, ascending."""
        return tuple(sorted({f for f, _ in self._by_config}))

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Batch sizes present in the table, ascending."""
        return tuple(sorted({b for _, b in self._by_config}))

    @property
    def idle_power_w(self) -> float:
        """Device power with nothing running (W), from the `idle_power_w` metadata line."""
        try:
            value = float(self.metadata["idle_power_w"])
        except (KeyError, ValueError):
            raise ProfileError(
                f"{self.source}: needs a metadata line '# idle_power_w: WATTS' (device power when idle)"
            ) from None
        if not value >= 0:
            raise ProfileError(f"{self.source}: idle_power_w must be >= 0, got {value}")
        return value

    def samples(self, freq_mhz: float, batch_size: int) -> np.ndarray:
        """Array of (latency_s, energy_j) rows for a config (nearest batch size at that frequency)."""
        key = (freq_mhz, batch_size)
        if key not in self._by_config:
            at_freq = [b for f, b in self._by_config if f == freq_mhz]
            if not at_freq:
                raise ProfileError(f"the profile has no samples at {freq_mhz:g} MHz")
            key = (freq_mhz, min(at_freq, key=lambda b: abs(b - batch_size)))
        return self._by_config[key]


def read_profile(path: str | os.PathLike[str]) -> ProfileTable:
    """Read and validate a profile table; raise ProfileError naming the file, line and problem."""
    path = Path(path)
    lines = read_lines(path, what="profile", error=ProfileError)
    metadata: dict[str, str] = {}
    rows: list[ProfileRow] = []
    header_seen = False
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                metadata[key.strip()] = value.strip()
            continue
        if not header_seen:
            if line.replace(" ", "") != HEADER:
                raise ProfileError(f"{path}:{lineno}: header must be '{HEADER}', got '{line}'")
            header_seen = True
            continue
        rows.append(_parse_row(line, where=f"{path}:{lineno}"))
    if not rows:
        raise ProfileError(f"{path}: no samples (expected the header '{HEADER}' and rows under it)")
    table = ProfileTable(metadata=metadata, rows=rows, source=path)
    if len(table.configs) < 2:
        raise ProfileError(f"{path}: only one config (needs at least two to choose between)")
    return table


def _parse_row(line: str, *, where: str) -> ProfileRow:
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != len(COLUMNS):
        raise ProfileError(f"{where}: expected {len(COLUMNS)} values ({HEADER}), got {len(parts)}")
    try:
        f, b, lat = (float(p) for p in parts[:3])
        e = None if parts[3] == "" else float(parts[3])  # empty: measured without an energy meter
    except ValueError:
        raise ProfileError(f"{where}: non-numeric value in '{line}'") from None
    if not all(math.isfinite(x) for x in (f, b, lat, 0.0 if e is None else e)):
        raise ProfileError(f"{where}: values must be finite, got '{line}'")
    if f <= 0 or lat <= 0 or (e is not None and e < 0):
        raise ProfileError(f"{where}: freq_mhz and latency_s must be > 0 and energy_j >= 0, got '{line}'")
    if b != int(b) or b < 1:
        raise ProfileError(f"{where}: batch_size must be a whole number >= 1, got '{parts[1]}'")
    return ProfileRow(freq_mhz=f, batch_size=int(b), latency_s=lat, energy_j=e)


def format_profile(metadata: Mapping[str, object], rows: Iterable[ProfileRow]) -> str:
    """The table as text: metadata lines, header, one row per sample."""
    out = [f"# {k}: {v}" for k, v in metadata.items()] + [HEADER]
    out += [
        f"{r.freq_mhz:g},{r.batch_size},{r.latency_s:.6g},{'' if r.energy_j is None else format(r.energy_j, '.6g')}"
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
