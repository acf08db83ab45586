"""What the server says: the Daphne log follower and its signatures, the Redis sampler."""
