"""Loading llama-cpp-python, and what a llama.cpp build and a GGUF file say about themselves."""

from __future__ import annotations

import ctypes
import logging
from functools import cache
from typing import Any

from edpilot.errors import EngineError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "the llamacpp engine needs llama-cpp-python: "
    "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF' pip install 'edpilot[llamacpp]' "
    "(x86 CPU; see docs/engines.md for CUDA and Jetson)"
)
_KEEP_ALIVE: list[Any] = []
_LOG_LEVELS = {3: logging.INFO, 4: logging.ERROR}  # ggml WARN (chatty), ERROR; DEBUG, INFO, CONT: debug


@cache
def llama_cpp_module() -> Any:
    """The llama_cpp module with llama.cpp's own log routed to logging (debug) and its backends loaded."""
    try:
        import llama_cpp
    except ImportError:
        raise EngineError(INSTALL_HINT) from None
    except OSError as exc:  # the shared library exists but cannot load (a build for another CPU or CUDA)
        raise EngineError(f"llama-cpp-python is installed but its library does not load: {exc}") from None
    callback = llama_cpp.llama_log_callback(_log_to_python)
    _KEEP_ALIVE.append(callback)  # llama.cpp holds the pointer for the life of the process
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    return llama_cpp


def _log_to_python(level: int, text: bytes, user_data: Any) -> None:
    log.log(_LOG_LEVELS.get(level, logging.DEBUG), "llama.cpp: %s", text.decode("utf-8", "replace").rstrip())


def build_backends(lib: Any) -> list[str]:
    """Backends this llama.cpp build registered, GPU first, e.g. ['CUDA', 'CPU'] (from llama_print_system_info)."""
    info = lib.llama_print_system_info().decode("utf-8", "replace")
    names = [part.split(" : ")[0].strip() for part in info.split("|") if " : " in part]
    names = list(dict.fromkeys(n for n in names if n))
    return sorted(names, key=lambda n: n == "CPU") or ["CPU"]


def model_meta(lib: Any, model: Any, key: str | None) -> str | None:
    """A GGUF metadata value as text (key None: llama.cpp's one-line model description)."""
    buf = ctypes.create_string_buffer(256)
    if key is None:
        n = lib.llama_model_desc(model, buf, len(buf))
    else:
        n = lib.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    return buf.value.decode("utf-8", "replace") if n >= 0 else None


def gguf_quantisation(lib: Any, model: Any) -> str:
    """The file's quantisation from GGUF `general.file_type`, e.g. 'Q4_K_M' (llama.cpp's LLAMA_FTYPE names)."""
    raw = model_meta(lib, model, "general.file_type")
    if raw is None or not raw.strip().isdigit():
        return "unknown (no general.file_type)"
    names: dict[int, str] = {
        value: name.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_").removeprefix("ALL_")
        for name, value in vars(lib).items()
        if name.startswith("LLAMA_FTYPE_") and isinstance(value, int)
    }
    return names.get(int(raw), f"file_type {raw}")
