"""The ticketmesh services, one package each."""
