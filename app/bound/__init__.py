"""Use cases with this process's ports already given: what the driving adapters call."""
