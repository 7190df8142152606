"""webhookd's benchmarks: ``python bench/run.py`` (see BENCHMARKS.md)."""
