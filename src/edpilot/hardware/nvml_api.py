"""Every NVML call goes through `NvmlApi`, which turns NVML's errors into DeviceError saying what to do.

`NvmlApi.load()` imports and initialises pynvml (or raises DeviceError); then
`nvml.call("nvmlDeviceGetHandleByIndex", 0, what="open GPU 0")` makes one call.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from edpilot.errors import DeviceError, PermissionDenied

# NVML return codes (nvml.h) and the advice that goes with each.
_ADVICE: dict[int, str] = {
    1: "NVML is not initialised (an edpilot bug: please report it)",
    2: "an argument was refused (is the GPU index right? `edpilot devices` lists the GPUs)",
    3: "this GPU does not support it; use --read-only, or another GPU",
    4: "permission denied: run with sudo, or use --read-only / --dry-run",
    6: "the GPU was not found; `edpilot devices` lists the GPUs",
    9: "the NVIDIA driver is not loaded: load it (nvidia-smi should work), or choose --device jetson, cpu or sim",
    12: "the NVIDIA driver's library (libnvidia-ml.so) was not found: install the NVIDIA driver, "
    "or choose --device jetson, cpu or sim",
    13: "the installed NVIDIA driver is too old for this call; update the driver",
    15: "the GPU has fallen off the bus: check the machine (dmesg), then reboot",
    18: "the NVIDIA driver and kernel module versions differ: reboot, or reinstall the driver",
}
_NO_PERMISSION = 4


def map_nvml_error(exc: BaseException, *, what: str) -> DeviceError:
    """The DeviceError (PermissionDenied for code 4) to raise for an NVML error met while doing `what`."""
    code = getattr(exc, "value", None)
    advice = _ADVICE.get(code) if isinstance(code, int) else None
    if advice is None and "NoPermission" in type(exc).__name__:
        code, advice = _NO_PERMISSION, _ADVICE[_NO_PERMISSION]
    message = f"NVML could not {what} ({exc})" + (f": {advice}" if advice else "")
    return PermissionDenied(message) if code == _NO_PERMISSION else DeviceError(message)


class NvmlApi:
    """pynvml (or a stand-in with its names), every call mapped through `map_nvml_error`."""

    def __init__(self, module: ModuleType | Any) -> None:
        self.module = module
        self._error: type[BaseException] = getattr(module, "NVMLError", Exception)

    @classmethod
    def load(cls) -> NvmlApi:
        """Import and initialise pynvml, or raise DeviceError saying how to get it."""
        try:
            import pynvml
        except ImportError:
            raise DeviceError("the nvml device needs nvidia-ml-py: pip install 'edpilot[nvml]'") from None
        api = cls(pynvml)
        api.call("nvmlInit", what="initialise NVML")
        return api

    def const(self, name: str) -> Any:
        """An NVML constant, e.g. NVML_CLOCK_GRAPHICS."""
        return getattr(self.module, name)

    def call(self, function: str, *args: Any, what: str) -> Any:
        """Call `function(*args)`; an NVML error becomes DeviceError/PermissionDenied saying what to do."""
        try:
            return getattr(self.module, function)(*args)
        except self._error as exc:
            raise map_nvml_error(exc, what=what) from None

    def device_count(self) -> int:
        """How many NVIDIA GPUs NVML sees."""
        return int(self.call("nvmlDeviceGetCount", what="count the GPUs"))
