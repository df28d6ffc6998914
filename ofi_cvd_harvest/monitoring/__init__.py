"""Prometheus metrics exported by the capture process (SPEC §8)."""
