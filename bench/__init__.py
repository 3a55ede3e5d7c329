"""Benchmarks, run by hand through bench/run; never part of the test suite."""
