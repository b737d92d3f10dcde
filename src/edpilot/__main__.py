"""`python -m edpilot` and the `edpilot` command: the CLI, with Ctrl-C during start-up (imports) one line too."""

from __future__ import annotations

import sys


def run() -> None:
    """Import the CLI and run it; a Ctrl-C anywhere, the imports included, ends with one line and exit 130."""
    try:
        from edpilot.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("edpilot: interrupted\n")
        raise SystemExit(130) from None
    main()


if __name__ == "__main__":
    run()
