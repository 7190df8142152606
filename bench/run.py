"""Run every benchmark, one after the other: ``python bench/run.py [--quick]``.

``--quick`` is the smoke mode CI runs: small N, one round, a few seconds, and no
assertion about speed. Each benchmark also runs alone (bench/ingest.py, bench/e2e.py,
bench/backlog.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import backlog, common, e2e, ingest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.common_arguments(parser)
    args = parser.parse_args(argv)
    forward: list[str] = []
    if args.quick:
        forward.append("--quick")
    if args.rounds:
        forward += ["--rounds", str(args.rounds)]
    if args.events:
        forward += ["--events", str(args.events)]
    if args.json:
        forward += ["--json", str(args.json)]
    if args.profile:
        forward += ["--profile", str(args.profile)]
    if args.keep:
        forward.append("--keep")
    started = time.monotonic()
    ingest.main(forward)
    print()
    e2e.main(forward)
    print()
    backlog.main(forward)
    print(f"\nall benchmarks: {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
