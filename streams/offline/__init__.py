"""Tools that run beside the worker: replay, demo, back-test, Kafka I/O, the local broker."""
