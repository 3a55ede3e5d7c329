"""In-memory storage, queue and fakes for unit tests and quick dev runs."""
