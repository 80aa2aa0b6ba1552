"""Where the time goes, from py-spy's collapsed stacks (``py-spy record -f raw``).

    .venv/bin/python bench/tools/profile_top.py profile.txt [--top 25]

Prints the share of samples whose stack passes through each function (inclusive) and the share
spent in each function itself (exclusive), highest first.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total = 0
    for line in args.stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        frames = [
            f.split(" (")[0] + " " + f.split("/")[-1].rstrip(")") if "(" in f else f
            for f in stack.split(";")
        ]
        total += samples
        for frame in set(frames):
            inclusive[frame] += samples
        exclusive[frames[-1]] += samples
    print(f"{total} samples")
    print("inclusive (stack passes through):")
    for frame, samples in inclusive.most_common(args.top):
        print(f"  {100 * samples / total:5.1f} %  {frame}")
    print("exclusive (on top of the stack):")
    for frame, samples in exclusive.most_common(args.top):
        print(f"  {100 * samples / total:5.1f} %  {frame}")


if __name__ == "__main__":
    main()
