"""Tests of the admin HTTP API, the dashboard and the Prometheus metrics."""
