"""Real clocks: the system's UTC time and the dev server's time-travel offset clock."""
