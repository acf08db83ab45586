"""From a run's figures to judgements: recovery per restart, thresholds, the summary table."""
