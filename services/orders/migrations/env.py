"""Alembic environment for the orders schema (shared logic in ticketmesh.migrate)."""

from ticketmesh.migrate import run_env

run_env()
