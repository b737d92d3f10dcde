"""edpilot: search GPU frequency and batch size online for the lowest energy-delay product of LLM inference.

Library entry points: `edpilot.tuner.tune` (the loop), `edpilot.runner.Runner` (one measurement window),
`edpilot.search.make_strategy` (ask/tell strategies), `edpilot.sim.open_sim` (the simulated Jetson).
Every deliberate error is an `edpilot.errors.EdpilotError`.
"""

__version__ = "0.1.0"
