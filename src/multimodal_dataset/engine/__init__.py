"""Producing batches: gathering in worker threads or processes, prefetching, cache filling."""
