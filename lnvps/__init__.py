"""Composition root: settings, the DI container, the server, the CLI and the demo seed."""
