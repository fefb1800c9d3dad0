"""The imperative shell: everything that talks to Celery, kombu and Redis."""
