"""Work queues between API and worker: in-process and Redis Streams."""
