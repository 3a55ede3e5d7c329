"""Tests: app-level loops."""
