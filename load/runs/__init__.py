"""Locust started as a process: headless runs, scenarios, sweeps, the demo."""
