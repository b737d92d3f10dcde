"""`python -m edpilot` runs the CLI."""

from edpilot.cli import main

main()
