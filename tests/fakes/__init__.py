"""Test fakes with observable state."""
