"""kawa's benchmarks: `python -m benchmarks.ingest` (or `make bench`) measures the collector end to end."""
