"""Rate limiters: an in-process token bucket and a Redis one shared by every node."""
