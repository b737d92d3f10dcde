"""Reading and writing sysfs attributes under a configurable root, with errors that say what to do."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from edpilot.errors import DeviceError, PermissionDenied

SYSFS_ROOT_ENV = "EDPILOT_SYSFS_ROOT"


def sysfs_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The filesystem root to look under: `root`, else $EDPILOT_SYSFS_ROOT, else `/`."""
    return Path(root or os.environ.get(SYSFS_ROOT_ENV) or "/")


def read_attr(path: Path) -> str:
    """Contents of a sysfs attribute, stripped; DeviceError if it cannot be read."""
    try:
        return path.read_text(encoding="ascii").strip()
    except PermissionError:
        raise PermissionDenied(f"cannot read {path}: permission denied (run with sudo)") from None
    except OSError as exc:
        raise DeviceError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_int(path: Path) -> int:
    """A sysfs attribute holding one integer."""
    text = read_attr(path)
    try:
        return int(text)
    except ValueError:
        raise DeviceError(f"{path} should hold an integer, got {text!r}") from None


def write_attr(path: Path, value: str, *, how_to_allow: str) -> None:
    """Write an existing sysfs attribute (never created, never through a symlink); errors say what to do."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    except PermissionError:
        raise PermissionDenied(f"cannot write {path}: permission denied. {how_to_allow}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DeviceError(f"refusing to write {path}: it is a symbolic link, not a sysfs attribute") from None
        raise DeviceError(f"cannot write {value!r} to {path}: {exc.strerror or exc}") from None
    try:
        os.write(fd, value.encode("ascii"))
    except PermissionError:
        raise PermissionDenied(f"cannot write {path}: permission denied. {how_to_allow}") from None
    except OSError as exc:
        raise DeviceError(f"cannot write {value!r} to {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def writable(path: Path) -> bool:
    """Whether this process may write `path`."""
    return os.access(path, os.W_OK)
