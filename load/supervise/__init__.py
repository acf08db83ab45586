"""Child processes that cannot outlive their owner: Redis, the N-Daphne stack."""
