"""Measuring: latency histograms, per-second windows, and their exact merge into the run folder's CSV files."""
