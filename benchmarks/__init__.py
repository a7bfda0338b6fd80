"""barnstorm's benchmarks: ``python -m benchmarks [all|fleet|engine] [--json FILE]``."""
