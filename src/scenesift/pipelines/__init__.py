"""Workflows that join the store, the models and the metrics (what the CLI commands run)."""
