"""Use cases, composition root, settings, CLI and worker loop."""
