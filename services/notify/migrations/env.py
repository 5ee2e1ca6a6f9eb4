"""Alembic environment for the notify schema (shared logic in ticketmesh.migrate)."""

from ticketmesh.migrate import run_env

run_env()
