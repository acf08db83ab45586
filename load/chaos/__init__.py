"""The chaos plan's runner and its targets: the local stack, an agent, command hooks."""
