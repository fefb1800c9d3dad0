"""Adapters implementing the ports of ``boundary_celery.ports``."""
