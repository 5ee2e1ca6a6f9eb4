"""The runtime every ticketmesh service shares: settings, logs, errors, server bootstrap, db, broker."""
