"""Schedulers: pick a backend for a new connection. One module per policy, registered by name."""
