"""Run the benchmarks: `python -m bench [--quick] [scheduler ...]` (or `make bench`).

Needs PostgreSQL and Redis: BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/monitorapp_bench, dropped and recreated)
and BENCH_REDIS_URL (default redis://127.0.0.1:6379/12, flushed).
Prints a table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import importlib
import traceback

from bench.common import machine, print_table, write_results

BENCHMARKS = ["scheduler", "throughput", "lag", "web", "memory"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="name", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    figures = []
    failed = []
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name} …", flush=True)
        try:
            figures.extend(module.run(quick=args.quick))
        except Exception:  # report the others' figures; this one failed loudly
            traceback.print_exc()
            failed.append(name)
    print()
    print(f"machine: {machine()}")
    print_table(figures)
    print(f"\nwritten to {write_results(figures)}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
