"""The lnvps test suite."""
