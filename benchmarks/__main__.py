"""`python -m benchmarks [name ...]`: run every benchmarks/bench_*.py (or those named) and print the ratio table."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import benchmarks
from benchmarks.harness import format_table


def main(argv: list[str] | None = None) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("only", nargs="*", help=f"benchmarks to run (default all): {', '.join(names)}")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per side (median reported)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.only if n not in names]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {names}")
    results = []
    for name in args.only or names:
        module = importlib.import_module(f"benchmarks.{name}")
        results += module.run(repeats=args.repeats)
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
