"""Runs the whole ticketmesh locally as plain processes: `python -m stack up`, or Stack in tests."""

from stack.envoy_config import EnvoySettings, render_envoy_config
from stack.launcher import Stack
from stack.processes import ManagedProcess, StackError
from stack.settings import Replica, StackSettings

__all__ = [
    "EnvoySettings",
    "ManagedProcess",
    "Replica",
    "Stack",
    "StackError",
    "StackSettings",
    "render_envoy_config",
]
