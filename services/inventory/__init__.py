"""Inventory: events, ticket types, stock and the holds on it."""
