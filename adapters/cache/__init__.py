"""Shared caches: the VM running-state cache in Redis."""
