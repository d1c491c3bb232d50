"""CLI-tier fixtures: the simulated cluster as its own ``pyjobset sim`` process."""

from tests.cli.test_cli_processes import sim_process

__all__ = ["sim_process"]
