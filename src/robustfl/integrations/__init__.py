"""Bridges from robustfl to other federated-learning engines (optional extras)."""
