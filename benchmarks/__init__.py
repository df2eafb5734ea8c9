"""Speed benchmarks: each `bench_*.py` times our code side by side with a reference in one process, prints ratios."""
