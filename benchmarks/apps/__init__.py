"""The two Celery apps the benchmark workers run (same no-op job, same settings)."""
