#!/usr/bin/env python3
"""Runs one command and records what it cost, for the benchmark scripts.

Usage: scripts/timed-run.py RESULT STDERR [NAME=VALUE ...] -- COMMAND [ARGS...]

Runs COMMAND (standard output discarded, standard error into the file
STDERR, with NAME=VALUE added to its environment) and writes to the file
RESULT one line: wall seconds, peak RSS in KiB, and user + system CPU
seconds. The wall time is taken around the child alone, so this script's
own start is not in it; the CPU time comes from the child's resource usage
(wait4), to the microsecond. The peak RSS is measured by /usr/bin/time,
which runs the command: a child forked from this script would count this
script's own memory (about 14 MiB) until it executes the command. So the
CPU time includes /usr/bin/time's own, about 1 ms. Exits with the
command's status (128 + N for signal N).
"""
import os
import subprocess
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    if "--" not in args or args.index("--") < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    split = args.index("--")
    result, errors, settings = args[0], args[1], args[2:split]
    command = args[split + 1 :]
    if not command:
        print("timed-run: no command given", file=sys.stderr)
        return 2
    env = dict(os.environ)
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep or not name:
            print(f"timed-run: {setting!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        env[name] = value
    rss_file = result + ".rss"
    timed = ["/usr/bin/time", "-f", "%M", "-o", rss_file, "--", *command]
    with open(errors, "wb") as err:
        start = time.perf_counter()
        try:
            child = subprocess.Popen(timed, stdout=subprocess.DEVNULL, stderr=err, env=env)
        except OSError as e:
            print(f"timed-run: cannot run /usr/bin/time: {e}", file=sys.stderr)
            return 127
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
    try:
        with open(rss_file) as f:
            # A command killed by a signal has a note before the figure.
            rss = int(f.read().split()[-1])
        os.remove(rss_file)
    except (OSError, ValueError, IndexError):
        rss = 0
    with open(result, "w") as out:
        out.write(f"{wall:.4f} {rss} {usage.ru_utime + usage.ru_stime:.4f}\n")
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())
