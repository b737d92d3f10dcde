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

__version__ = "0.1.0"

from edpilot.backends import open_device, open_engine  # noqa: E402 - after __version__, which run.py imports
from edpilot.engine import Completion, Engine, EngineOptions  # noqa: E402
from edpilot.errors import (  # noqa: E402
    ConfigError,
    DeviceError,
    EdpilotError,
    EngineError,
    PermissionDenied,
    ProfileError,
    WorkloadError,
)
from edpilot.hardware import Device, DeviceCapabilities, DeviceOptions  # noqa: E402
from edpilot.monitor import EnergyMonitor, Measurement  # noqa: E402
from edpilot.objective import Objective, Observation, parse_objective  # noqa: E402
from edpilot.runlog import RoundRecord, RunLog, Summary, read_run_log  # noqa: E402
from edpilot.runner import Runner  # noqa: E402
from edpilot.search import STRATEGIES, SearchContext, Strategy, make_strategy  # noqa: E402
from edpilot.serving import EnergyWindow, Traffic  # noqa: E402
from edpilot.space import Config, ConfigSpace  # noqa: E402
from edpilot.tuner import SessionSettings, TuneResult, TuningSession, tune  # noqa: E402
from edpilot.tuner_api import Round, Tuner  # noqa: E402
from edpilot.workload import Request, Workload  # noqa: E402

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
