"""A run from its configuration to its exit code: the frozen run config, one run (fleet,
transport, engine, metrics, outputs), shards over processes, and the capacity search.
"""
