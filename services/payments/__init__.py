"""Payments: the simulated gateway's charges, and the failure-injection mode shared by its processes."""
