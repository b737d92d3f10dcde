"""Strategies from outside the package: `module:Class` or `path/to/file.py:Class`, a subclass of `Strategy`.

The class is built like a built-in one, `Class(ctx: SearchContext)`, and driven through the same ask/tell
protocol (edpilot.search.base). Anything that keeps it from loading is one ConfigError line.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from edpilot.errors import ConfigError
from edpilot.search.base import Strategy


def load_class(spec: str) -> type[Strategy]:
    """Import `module:Class` (or `file.py:Class`) and check that it is a Strategy subclass."""
    module_name, sep, class_name = spec.rpartition(":")
    if not sep or not module_name or not class_name.isidentifier():
        raise ConfigError(f"strategy {spec!r}: expected module:Class or path/to/file.py:Class")
    module = _import(module_name, spec)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"strategy {spec!r}: {module_name} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"strategy {spec!r}: {class_name} is not a subclass of edpilot.search.Strategy")
    return cls


def _import(module_name: str, spec: str) -> ModuleType:
    try:
        if module_name.endswith(".py"):
            return _import_file(Path(module_name))
        return importlib.import_module(module_name)
    except ConfigError:
        raise
    except ImportError as exc:
        raise ConfigError(f"strategy {spec!r}: cannot import {exc.name or module_name} ({exc})") from None
    except Exception as exc:  # the outside module's own error while importing: say which, never a traceback
        raise ConfigError(f"strategy {spec!r}: importing {module_name} failed: {type(exc).__name__}: {exc}") from None


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"strategy file {path} does not exist")
    name = "edpilot_outside_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"strategy file {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
