"""Inference engines behind one `Engine` interface (see `edpilot.engine.base`)."""

from edpilot.engine.base import Completion, Engine

__all__ = ["Completion", "Engine"]
