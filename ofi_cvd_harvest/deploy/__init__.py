"""Deployment beyond one box: the shared Dagster instance's checks (docs/deploy.md)."""
