"""End-to-end tests: the real lnvps process."""
