"""What a person reads: the run report (report.html) and comparisons of runs."""
