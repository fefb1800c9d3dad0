"""boundary-celery benchmarks: boundary-celery vs plain Celery on the same Redis.

Run ``make bench`` or ``python -m benchmarks --help``; see benchmarks/README.md.
"""
