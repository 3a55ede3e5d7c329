"""In-process fakes of external services (LND) for contract and end-to-end tests."""
