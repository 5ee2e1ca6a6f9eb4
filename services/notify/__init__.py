"""Notify: one message to the buyer per order event, consumed from JetStream, listed by user or order."""
