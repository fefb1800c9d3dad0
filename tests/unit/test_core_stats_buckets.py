"""The duration histogram's bucket choice (pure)."""

from boundary_celery.core.stats import DURATION_BUCKETS_MS, duration_bucket


def test_duration_bucket_edges():
    assert duration_bucket(0) == 0 and duration_bucket(-3) == 0
    assert duration_bucket(5) == 0 and duration_bucket(5.01) == 1
    assert duration_bucket(DURATION_BUCKETS_MS[-1]) == len(DURATION_BUCKETS_MS) - 1
    assert duration_bucket(DURATION_BUCKETS_MS[-1] + 1) == len(DURATION_BUCKETS_MS)  # +Inf
