"""Driven and driving adapters: storage, HTTP, VM hosts, payment rails."""
