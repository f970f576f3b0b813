"""Reference drains of other queues beside our own (bench/README.md, Peers)."""
