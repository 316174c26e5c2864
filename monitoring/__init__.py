"""Evidently drift/performance reports and the retrain trigger (built by the monitoring issue)."""
