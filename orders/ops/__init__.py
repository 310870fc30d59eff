"""The operator's side: counts, workers, stats, actions, search, retention, metrics."""
