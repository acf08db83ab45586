"""A load and chaos testing suite for Django Channels behind Daphne with Redis."""
