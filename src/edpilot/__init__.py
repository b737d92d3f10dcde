"""edpilot: find and hold the GPU clock and batch size with the lowest energy-delay product of LLM inference.

Use it from Python (docs/api.md has examples that run as they are):

    import edpilot

    with edpilot.open_device("sim:orin-agx-32gb") as device:          # clocks are put back when the block ends
        monitor = edpilot.EnergyMonitor(device)                       # energy of a block of code
        with monitor.window("work") as w:
            ...
        tuner = edpilot.Tuner(device, arrival_rate_per_s=1.0)        # ask/tell from your own serving loop
        config = tuner.next_config()

What is where (every name below is importable from `edpilot`):

- `backends`: `open_device`, `open_engine`: a device or engine from a spec string, as a `with` block that
  always puts clocks back.
- `monitor`: `EnergyMonitor`, `Measurement`: named energy windows (total, per rail, meter updates).
- `tuner_api`: `Tuner`, `Round`: ask/tell tuning for your own loop (`next_config`, `round` or `record`, `best`,
  `set_traffic`).
- `tuner`: `TuningSession`, `SessionSettings`, `tune`, `TuneResult`: the session `edpilot tune` and `serve` drive.
- `runner`: `Runner`: one replayed measurement window, a config and a workload in, an `Observation` out.
- `search`: `make_strategy`, `SearchContext`, `Strategy`, `STRATEGIES`: strategies behind one ask/tell protocol.
- `space`: `Config`, `ConfigSpace`: a setting (GPU MHz, batch size) and the grid of them.
- `objective`: `Observation`, `Objective`, `parse_objective`: what a window measured, and what it costs.
- `serving`: `Traffic`, `EnergyWindow`: the traffic the search plans for; one energy window over a meter.
- `workload`: `Workload`, `Request`: arrival processes and requests.
- `hardware`: `Device`, `DeviceCapabilities`, `DeviceOptions`: devices `jetson`, `nvml`, `cpu` (and `sim`).
- `engine`: `Engine`, `EngineOptions`, `Completion`: engines `hf`, `llamacpp`, `openai` (and `sim`).
- `runlog`: `RunLog`, `read_run_log`, `RoundRecord`, `Summary`: the JSONL run log, written as it goes.

Errors: every error raised on purpose is an `EdpilotError` whose message says what to do: `ConfigError` (a
setting, spec or grid value), `DeviceError` and its leaf `PermissionDenied` (a device that cannot be found, read
or written), `EngineError` (a model that cannot load or generate), `WorkloadError`, `ProfileError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it. Imported on first use, so `import edpilot` (and the `edpilot`
# command's start-up, whose Ctrl-C guard sits in `edpilot.__main__`) stays light.
_EXPORTS: dict[str, str] = {
    "open_device": "edpilot.backends",
    "open_engine": "edpilot.backends",
    "Completion": "edpilot.engine",
    "Engine": "edpilot.engine",
    "EngineOptions": "edpilot.engine",
    "ConfigError": "edpilot.errors",
    "DeviceError": "edpilot.errors",
    "EdpilotError": "edpilot.errors",
    "EngineError": "edpilot.errors",
    "PermissionDenied": "edpilot.errors",
    "ProfileError": "edpilot.errors",
    "WorkloadError": "edpilot.errors",
    "Device": "edpilot.hardware",
    "DeviceCapabilities": "edpilot.hardware",
    "DeviceOptions": "edpilot.hardware",
    "EnergyMonitor": "edpilot.monitor",
    "Measurement": "edpilot.monitor",
    "Objective": "edpilot.objective",
    "Observation": "edpilot.objective",
    "parse_objective": "edpilot.objective",
    "RoundRecord": "edpilot.runlog",
    "RunLog": "edpilot.runlog",
    "Summary": "edpilot.runlog",
    "read_run_log": "edpilot.runlog",
    "Runner": "edpilot.runner",
    "STRATEGIES": "edpilot.search",
    "SearchContext": "edpilot.search",
    "Strategy": "edpilot.search",
    "make_strategy": "edpilot.search",
    "EnergyWindow": "edpilot.serving",
    "Traffic": "edpilot.serving",
    "Config": "edpilot.space",
    "ConfigSpace": "edpilot.space",
    "SessionSettings": "edpilot.tuner",
    "TuneResult": "edpilot.tuner",
    "TuningSession": "edpilot.tuner",
    "tune": "edpilot.tuner",
    "Round": "edpilot.tuner_api",
    "Tuner": "edpilot.tuner_api",
    "Request": "edpilot.workload",
    "Workload": "edpilot.workload",
}

if TYPE_CHECKING:
    from edpilot.backends import open_device, open_engine
    from edpilot.engine import Completion, Engine, EngineOptions
    from edpilot.errors import (
        ConfigError,
        DeviceError,
        EdpilotError,
        EngineError,
        PermissionDenied,
        ProfileError,
        WorkloadError,
    )
    from edpilot.hardware import Device, DeviceCapabilities, DeviceOptions
    from edpilot.monitor import EnergyMonitor, Measurement
    from edpilot.objective import Objective, Observation, parse_objective
    from edpilot.runlog import RoundRecord, RunLog, Summary, read_run_log
    from edpilot.runner import Runner
    from edpilot.search import STRATEGIES, SearchContext, Strategy, make_strategy
    from edpilot.serving import EnergyWindow, Traffic
    from edpilot.space import Config, ConfigSpace
    from edpilot.tuner import SessionSettings, TuneResult, TuningSession, tune
    from edpilot.tuner_api import Round, Tuner
    from edpilot.workload import Request, Workload


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edpilot' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "STRATEGIES",
    "Completion",
    "Config",
    "ConfigError",
    "ConfigSpace",
    "Device",
    "DeviceCapabilities",
    "DeviceError",
    "DeviceOptions",
    "EdpilotError",
    "EnergyMonitor",
    "EnergyWindow",
    "Engine",
    "EngineError",
    "EngineOptions",
    "Measurement",
    "Objective",
    "Observation",
    "PermissionDenied",
    "ProfileError",
    "Request",
    "RoundRecord",
    "Round",
    "RunLog",
    "Runner",
    "SearchContext",
    "SessionSettings",
    "Strategy",
    "Summary",
    "TuneResult",
    "Tuner",
    "TuningSession",
    "Traffic",
    "Workload",
    "WorkloadError",
    "__version__",
    "make_strategy",
    "open_device",
    "open_engine",
    "parse_objective",
    "read_run_log",
    "tune",
]
