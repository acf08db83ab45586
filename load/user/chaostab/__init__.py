"""The web UI's chaos tab: the run's per-second rows, events and findings, and buttons that
act through the run's chaos controller (served by the master or the local runner only)."""
