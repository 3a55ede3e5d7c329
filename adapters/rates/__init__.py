"""Exchange-rate sources and stores."""
