#!/usr/bin/env python3
"""Pools the rounds that scripts/bench-apply.sh --log wrote, across its runs.

Usage: scripts/bench-pool.py LOG [--commit PREFIX]... [--goal 0.55]
       scripts/bench-pool.py --codecs LOG [--commit PREFIX]...

One run of bench-apply.sh gives each tool's median over a few minutes, and
this machine's speed drifts by up to a third within minutes, so a single
run's medians can land either side of a goal that is a few percent away.
Each round's runs are seconds apart, so the ratio of ours to wimlib's in
the same round cancels most of the drift; pooling those ratios over runs
made at different times narrows the estimate further.

For each WIM, over every logged round (of commits starting with one of
the PREFIXes, if any is given): the number of rounds and runs, then for
our CPU time over wimlib's and for our wall time over wimlib's, the
median of the rounds' ratios with a 95% confidence interval for it. The
interval is the distribution-free one of the sign test: order statistics
chosen from the binomial distribution, nothing assumed about the ratios'
spread. A goal counts as met when the whole interval is within it: CPU
ratio at most 1, wall ratio at most the goal (DESIGN.md §6). With one
thread logged, the same for our one-thread CPU time. Exit status 0 when
every goal is met, 1 when one is not, 2 on bad input.

With --codecs, LOG is what scripts/bench-codecs.sh --log wrote: one line
per sample (a slice's wimlib time over our time, from decodes
milliseconds apart). For each row (codec:chunk:kind): the samples and
runs, each run's median, and the median of all samples with its 95%
interval. A row shows the goal of at least 1.00 (DESIGN.md §6) when the
whole pooled interval is at or above 1.00 and so is every run's median:
a run's samples share the machine's state of those seconds, and the
ratio moves by several percent from one run to the next (up to 9% on
solid mixed data), more than a run's own interval says.
"""
import argparse
import math
import sys


def median_interval(values, confidence=0.95):
    """The median of `values` and a distribution-free interval for it."""
    xs = sorted(values)
    n = len(xs)
    mid = (xs[(n - 1) // 2] + xs[n // 2]) / 2
    # The largest k with P(B(n, 1/2) < k) <= (1 - confidence) / 2; the
    # interval is then [x_(k), x_(n+1-k)] (1-based), or none when n is too
    # small for any k >= 1.
    tail = (1 - confidence) / 2
    below, k = 0.0, 0
    while k < n:
        p = math.comb(n, k) / 2**n
        if below + p > tail:
            break
        below += p
        k += 1
    if k == 0:
        return mid, None, None
    return mid, xs[k - 1], xs[n - k]


class BadLog(Exception):
    """A line of the log that cannot be read; the message names it."""


def for_commits(commits):
    """The end of a "nothing logged" message: which commits were asked for."""
    return f" for commits {', '.join(c + '*' for c in commits)}" if commits else ""


def log_lines(path, width, commits):
    """The fields of each line of the log at `path` whose commit (its
    second field) starts with one of `commits` (every line when there are
    none), with the line's number; comments and blank lines are skipped.
    Raises BadLog for a line without `width` fields, OSError when the file
    cannot be read."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.startswith("#") or not line.strip():
                continue
            fields = line.split()
            if len(fields) != width:
                raise BadLog(f"{path}:{number}: expected {width} fields, found {len(fields)}")
            if not commits or fields[1].startswith(tuple(commits)):
                yield number, fields


def read_log(args, width, take):
    """Calls take(number, fields) for each line of args.log (see
    log_lines); take raises BadLog for a line it cannot use. Returns 2
    after saying why when the log cannot be read, None otherwise."""
    try:
        for number, fields in log_lines(args.log, width, args.commit):
            take(number, fields)
    except BadLog as e:
        print(e, file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{args.log}: {e.strerror}", file=sys.stderr)
        return 2
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--commit", action="append", default=[],
                        help="only rounds of commits starting with this (repeatable: any of them)")
    parser.add_argument("--goal", type=float, default=0.55, help="wall-time goal (default 0.55)")
    parser.add_argument("--codecs", action="store_true", help="LOG is from bench-codecs.sh --log")
    args = parser.parse_args()
    if args.codecs:
        return pool_codecs(args)

    rounds = {}
    runs = {}

    def take(number, fields):
        stamp, commit, wim = fields[0], fields[1], fields[2]
        try:
            w_wall, w_cpu, o_wall, o_cpu = (float(x) for x in fields[4:8])
            one = None if fields[9] == "-" else float(fields[9])
        except ValueError:
            raise BadLog(f"{args.log}:{number}: not a number") from None
        if min(w_wall, w_cpu) <= 0:
            raise BadLog(f"{args.log}:{number}: wimlib's times must be positive")
        rounds.setdefault(wim, []).append((o_cpu / w_cpu, o_wall / w_wall, None if one is None else one / w_cpu))
        runs.setdefault(wim, set()).add((stamp, commit))

    if read_log(args, 10, take):
        return 2
    if not rounds:
        print("no rounds logged" + for_commits(args.commit), file=sys.stderr)
        return 2

    def cell(values, limit):
        mid, low, high = median_interval(values)
        if low is None:
            return f"{mid:.3f} (too few rounds for an interval)", False
        return f"{mid:.3f} ({low:.3f}–{high:.3f})", high <= limit

    all_met = True
    print("| WIM | rounds (runs) | CPU ours / wimlib: median (95% interval) | wall ours / wimlib | one thread: CPU ours / wimlib | goal |")
    print("|---|---|---|---|---|---|")
    order = ["XPRESS", "LZX", "LZMS", "solid"]
    for wim in sorted(rounds, key=lambda w: (order.index(w) if w in order else len(order), w)):
        values = rounds[wim]
        cpu, cpu_met = cell([v[0] for v in values], 1.0)
        wall, wall_met = cell([v[1] for v in values], args.goal)
        ones = [v[2] for v in values if v[2] is not None]
        one = cell(ones, 1.0)[0] if ones else "-"
        met = cpu_met and wall_met
        all_met &= met
        print(f"| {wim} | {len(values)} ({len(runs[wim])}) | {cpu} | {wall} | {one} | {'met' if met else 'NOT MET'} |")
    stamps = sorted({s for r in runs.values() for s, _ in r})
    commits = sorted({c for r in runs.values() for _, c in r})
    print()
    print(f"Runs from {stamps[0]} to {stamps[-1]}; commits {', '.join(commits)}.")
    return 0 if all_met else 1


def pool_codecs(args):
    """The --codecs report (see the module documentation)."""
    samples = {}

    def take(number, fields):
        stamp, commit, row = fields[0], fields[1], fields[2]
        try:
            ours, theirs = int(fields[5]), int(fields[6])
        except ValueError:
            raise BadLog(f"{args.log}:{number}: not a number") from None
        if ours <= 0 or theirs <= 0:
            raise BadLog(f"{args.log}:{number}: times must be positive")
        samples.setdefault(row, {}).setdefault((stamp, commit), []).append(theirs / ours)

    if read_log(args, 7, take):
        return 2
    if not samples:
        print("no samples logged" + for_commits(args.commit), file=sys.stderr)
        return 2

    def key(row):
        codec, chunk, kind = (row.split(":") + ["", "", ""])[:3]
        order = ["XPRESS", "LZX", "LZMS", "solid"]
        kinds = ["text", "x86", "mixed"]
        return (order.index(codec) if codec in order else len(order),
                int(chunk) if chunk.isdigit() else 0,
                kinds.index(kind) if kind in kinds else len(kinds), row)

    all_shown = True
    print("| row | samples (runs) | run medians | pooled median (95% interval) | ≥ 1.00 shown |")
    print("|---|---|---|---|---|")
    for row in sorted(samples, key=key):
        runs = samples[row]
        medians = [median_interval(v)[0] for _, v in sorted(runs.items())]
        pooled = [x for v in runs.values() for x in v]
        mid, low, high = median_interval(pooled)
        interval = "none" if low is None else f"{low:.3f}–{high:.3f}"
        shown = low is not None and low >= 1.0 and min(medians) >= 1.0
        all_shown &= shown
        print(f"| {row} | {len(pooled)} ({len(runs)}) | {', '.join(f'{m:.3f}' for m in medians)} "
              f"| {mid:.3f} ({interval}) | {'yes' if shown else 'no'} |")
    stamps = sorted({s for r in samples.values() for s, _ in r})
    commits = sorted({c for r in samples.values() for _, c in r})
    print()
    print(f"Runs from {stamps[0]} to {stamps[-1]}; commits {', '.join(commits)}.")
    return 0 if all_shown else 1


if __name__ == "__main__":
    sys.exit(main())
