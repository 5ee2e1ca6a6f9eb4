"""Orders: buyers, orders, idempotency keys and the outbox; the authority on holds and expiry."""
