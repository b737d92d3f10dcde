"""Sections a stop signal does not cut in two, such as a round counted but not yet in the run log.

Python runs signal handlers in the main thread, between bytecodes; a handler that raises there can land between
two statements that belong together. Inside `uninterrupted()` the stop handlers (`cli.common.Stop`,
`hardware.guard`) hand their exception to `held()` instead, and it is raised as the section ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_held: list[BaseException] = []
_depth = 0  # uninterrupted sections the main thread is inside


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Raise a stop signal's exception that arrives in this block when the block ends; outside the main thread,
    where no handler runs, a plain block."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _held:
            exc = _held[0]
            _held.clear()
            raise exc


def held(exc: BaseException) -> bool:
    """Keep `exc` (a signal's KeyboardInterrupt or SystemExit) for the end of the running `uninterrupted` block;
    False when none runs, and the caller raises it now."""
    if _depth == 0:
        return False
    _held.append(exc)
    return True
