"""The agent: an HTTP control API over a stack on the server host, and its client."""
