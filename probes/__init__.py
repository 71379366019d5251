"""What tests and benchmarks share against a running stack: rows written, topics read, slots dropped."""
