"""Simulation and backtesting: replay demand through the planner the daemon runs.

`autoscaler simulate` is `command.add_arguments` / `command.run`; the pieces are small
modules: trace (loading), sim_provider, replay, oracle, run (figures), report, plot,
backtest (Prometheus range queries).
"""

from autoscaler.simulation.command import add_arguments, run

__all__ = ["add_arguments", "run"]
