#!/usr/bin/env python3
"""Compare two applied trees, e.g. wimlib-imagex's and ours.

Usage: scripts/compare-trees.py EXPECTED ACTUAL [options]

Compares, entry by entry (the roots included): presence, file type, file
contents, symbolic-link targets, hard-link groups (which names share an
inode), permission bits, and modification times (directories and symbolic
links too). Absolute link targets that point into a tree are compared
relative to that tree's root, since an apply writes them for its own target.

Exit status: 0 identical, 1 different (the differences are listed), 2 usage
or read error.
"""

import argparse
import os
import signal
import stat
import sys
from collections import defaultdict

CHUNK = 1 << 20


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("expected")
    p.add_argument("actual")
    p.add_argument(
        "--mtime-resolution",
        type=int,
        default=100,
        metavar="NS",
        help="compare modification times in units of NS nanoseconds "
        "(default 100, the WIM format's resolution; 1000000000 for whole seconds)",
    )
    p.add_argument("--no-mtime", action="store_true", help="do not compare modification times")
    p.add_argument("--no-mode", action="store_true", help="do not compare permission bits")
    p.add_argument("--no-hardlinks", action="store_true", help="do not compare hard-link groups")
    p.add_argument("--max-report", type=int, default=20, help="differences listed per kind (default 20)")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    args = p.parse_args()
    if args.mtime_resolution < 1:
        p.error("--mtime-resolution must be at least 1")
    return args


def scan(root):
    """Relative path -> lstat result, for root and everything below it."""
    entries = {".": os.lstat(root)}
    stack = [(root, "")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                r = f"{rel}{e.name}"
                st = e.stat(follow_symlinks=False)
                entries[r] = st
                if stat.S_ISDIR(st.st_mode):
                    stack.append((e.path, r + "/"))
    return entries


def kind(mode):
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "char device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "unknown"


def link_target(root, rel):
    target = os.readlink(os.path.join(root, rel))
    base = os.path.abspath(root)
    if target == base:
        return "<root>"
    if target.startswith(base + "/"):
        return "<root>" + target[len(base):]
    return target


def same_contents(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca = fa.read(CHUNK)
            cb = fb.read(CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def link_groups(entries):
    """Relative path -> sorted tuple of all names of the same regular file."""
    by_inode = defaultdict(list)
    for rel, st in entries.items():
        if stat.S_ISREG(st.st_mode):
            by_inode[st.st_ino].append(rel)
    groups = {}
    for names in by_inode.values():
        group = tuple(sorted(names))
        for n in names:
            groups[n] = group
    return groups


def compare(args):
    exp_root, act_root = args.expected, args.actual
    exp, act = scan(exp_root), scan(act_root)
    diffs = defaultdict(list)

    for rel in sorted(exp.keys() - act.keys()):
        diffs["missing"].append(f"{rel} ({kind(exp[rel].st_mode)})")
    for rel in sorted(act.keys() - exp.keys()):
        diffs["extra"].append(f"{rel} ({kind(act[rel].st_mode)})")

    compared = {}  # (expected inode, actual inode) -> same contents
    for rel in sorted(exp.keys() & act.keys()):
        e, a = exp[rel], act[rel]
        ek, ak = kind(e.st_mode), kind(a.st_mode)
        if ek != ak:
            diffs["type"].append(f"{rel}: {ek} expected, {ak} found")
            continue
        if ek == "file":
            if e.st_size != a.st_size:
                diffs["contents"].append(f"{rel}: {e.st_size} bytes expected, {a.st_size} found")
            else:
                key = (e.st_ino, a.st_ino)
                if key not in compared:
                    compared[key] = same_contents(os.path.join(exp_root, rel), os.path.join(act_root, rel))
                if not compared[key]:
                    diffs["contents"].append(f"{rel}: same size ({e.st_size} bytes), different bytes")
        elif ek == "symlink":
            et, at = link_target(exp_root, rel), link_target(act_root, rel)
            if et != at:
                diffs["link target"].append(f"{rel}: -> {et!r} expected, -> {at!r} found")
        if not args.no_mode and stat.S_IMODE(e.st_mode) != stat.S_IMODE(a.st_mode) and ek != "symlink":
            diffs["mode"].append(f"{rel}: {stat.S_IMODE(e.st_mode):04o} expected, {stat.S_IMODE(a.st_mode):04o} found")
        if not args.no_mtime:
            res = args.mtime_resolution
            if e.st_mtime_ns // res != a.st_mtime_ns // res:
                diffs["mtime"].append(f"{rel} ({ek}): {e.st_mtime_ns} ns expected, {a.st_mtime_ns} ns found")

    if not args.no_hardlinks:
        eg, ag = link_groups(exp), link_groups(act)
        seen = set()
        for rel in sorted(eg.keys() & ag.keys()):
            if eg[rel] != ag[rel] and eg[rel] not in seen:
                seen.add(eg[rel])
                diffs["hard links"].append(f"{rel}: linked with {list(eg[rel])} expected, with {list(ag[rel])} found")

    return exp, diffs


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = parse_args()
    for d in (args.expected, args.actual):
        if not os.path.isdir(d):
            print(f"compare-trees: {d} is not a directory", file=sys.stderr)
            return 2
    try:
        exp, diffs = compare(args)
    except OSError as e:
        print(f"compare-trees: {e}", file=sys.stderr)
        return 2
    total = sum(len(v) for v in diffs.values())
    if total == 0:
        print(f"identical: {len(exp)} entries ({args.expected} vs {args.actual})")
        return 0
    summary = ", ".join(f"{len(v)} {k}" for k, v in diffs.items())
    print(f"DIFFERENT: {summary} ({args.expected} vs {args.actual})")
    if not args.quiet:
        for k, v in diffs.items():
            for line in v[: args.max_report]:
                print(f"  {k}: {line}")
            if len(v) > args.max_report:
                print(f"  {k}: ... {len(v) - args.max_report} more")
    return 1


if __name__ == "__main__":
    sys.exit(main())
