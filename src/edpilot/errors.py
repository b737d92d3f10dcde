"""The exceptions edpilot raises; the CLI turns each into one line on stderr and exit code 2."""

from __future__ import annotations


class EdpilotError(Exception):
    """Base of every error edpilot raises on purpose; its message says what to do."""


class ConfigError(EdpilotError):
    """A setting, spec string or grid value is not valid."""


class DeviceError(EdpilotError):
    """A device could not be found, read or driven."""


class PermissionDenied(DeviceError):
    """A device knob exists but this process may not write it."""


class ProfileError(EdpilotError):
    """A profile table is missing or malformed."""


class WorkloadError(EdpilotError):
    """A workload (arrivals, prompts, trace) is not valid."""


class EngineError(EdpilotError):
    """An inference engine could not be loaded or failed to generate."""
