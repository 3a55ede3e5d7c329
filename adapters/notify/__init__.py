"""Notifier adapters: structured log, SMTP e-mail and an in-memory recorder for tests."""
