"""Summarise a ``py-spy record --format raw`` file (what ``--profile DIR`` writes).

    python bench/profile_report.py DIR/e2e-w1.txt [--top 25] [--lines]

Per thread (the event loop vs aiosqlite's database thread): samples, then the
functions with the most self samples (the leaf frame) and the most inclusive
samples (anywhere on the stack). Line numbers are folded into their function,
unless ``--lines`` (self samples per source line: which statement of a function).
Time in C code (SQLite, orjson) is shown as its calling Python line.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")


def function(frame: str, lines: bool = False) -> str:
    if lines:
        return frame.strip()
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['name']} ({match['file']})"


def thread_of(frames: list[str]) -> str:
    if any("_connection_worker_thread" in f for f in frames):
        return "database thread (aiosqlite)"
    if any("BaseEventLoop" in f or "_run_module_as_main" in f for f in frames):
        return "event loop thread"
    return "other"


def report(path: Path, top: int, lines: bool = False) -> None:
    per_thread: dict[str, tuple[Counter[str], Counter[str]]] = {}
    totals: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        thread = thread_of(frames)
        functions = [function(f) for f in frames]
        own, inclusive = per_thread.setdefault(thread, (Counter(), Counter()))
        totals[thread] += count
        own[function(frames[-1], lines)] += count
        for name in set(functions):
            inclusive[name] += count
    grand = sum(totals.values())
    print(f"{path}: {grand} samples")
    for thread, (own, inclusive) in sorted(per_thread.items(), key=lambda t: -totals[t[0]]):
        samples = totals[thread]
        print(f"\n== {thread}: {samples} samples ({100 * samples / grand:.0f}%)")
        print("-- self")
        for name, count in own.most_common(top):
            print(f"{100 * count / samples:6.1f}%  {name}")
        print("-- inclusive")
        for name, count in inclusive.most_common(top):
            print(f"{100 * count / samples:6.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--lines", action="store_true",
                        help="self samples per source line instead of per function")
    args = parser.parse_args()
    for path in args.files:
        report(path, args.top, args.lines)


if __name__ == "__main__":
    main()
