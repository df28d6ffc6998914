"""Prometheus metrics exported by the capture process (docs/monitoring.md)."""
