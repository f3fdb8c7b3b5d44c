#!/usr/bin/env python3
"""Generate the benchmark tree for scripts/bench-apply.sh.

Usage: scripts/gen-bench-tree.py DIR [MB] [--seed N]

Writes a reproducible tree of about MB megabytes (default 300) into DIR (which
must not exist or be empty). The same seed on the same machine gives the same
tree, byte for byte, timestamps included. What it holds, by share of MB:

  30%  x86-64 ELF binaries and libraries copied from /usr/bin and /usr/lib
       (call-heavy machine code, what LZX's E8 translation is for)
  30%  generated text: prose, log files, source-like code
  20%  random data (incompressible), from 16 KiB to 16 MiB per file
   5%  thousands of small files, 0 to 4 KiB (text and random)
  10%  duplicate files: same content as another file, separate inode
  plus empty files, empty and deeply nested directories, hard-link groups
  (including an empty file's), relative, absolute (inside and outside the
  tree) and dangling symbolic links, names with spaces and non-ASCII letters,
  and varied modification times with sub-second parts.

The binaries are whatever /usr holds, so installing packages changes some of
them; everything else depends only on the seed and MB.
"""

import argparse
import hashlib
import os
import random
import shutil
import stat
import sys

MIB = 1024 * 1024

# Start of the modification times given to entries: 2020-09-13T12:26:40Z.
BASE_MTIME = 1_600_000_000
MTIME_SPAN = 5 * 365 * 24 * 3600

ELF_MAGIC = b"\x7fELF"
EM_X86_64 = 0x3E


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="where to create the tree (must not exist or be empty)")
    p.add_argument("mb", nargs="?", type=int, default=300, help="approximate size in MB (default 300)")
    p.add_argument("--seed", type=int, default=20261124, help="random seed (default 20261124)")
    args = p.parse_args()
    if args.mb < 4:
        p.error("MB must be at least 4")
    return args


class Tree:
    def __init__(self, root, rng):
        self.root = root
        self.rng = rng
        self.dirs = []  # relative paths of directories (excluding root)
        self.files = []  # relative paths of regular files with content
        self.bytes = 0
        self.names_used = set()

    def path(self, rel):
        return os.path.join(self.root, rel)

    def mkdir(self, rel):
        os.makedirs(self.path(rel), exist_ok=True)
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.names_used:
                self.names_used.add(d)
                self.dirs.append(d)

    def unique(self, rel):
        """A path that is not taken yet, derived from rel."""
        base, ext = os.path.splitext(rel)
        cand, n = rel, 1
        while cand in self.names_used:
            cand = f"{base}-{n}{ext}"
            n += 1
        self.names_used.add(cand)
        return cand

    def write(self, rel, data, track=True):
        rel = self.unique(rel)
        with open(self.path(rel), "xb") as f:
            f.write(data)
        self.bytes += len(data)
        if track and data:
            self.files.append(rel)
        return rel


# ---------------------------------------------------------------- text


SYLLABLES = (
    "ka ri to ne mu sa lo vi de pa ur an te ol is ma qu ex in ro be la "
    "ti on er st ch th ag um el os ar ve co di fi ge ho ju ly ny pe"
).split()


def make_vocabulary(rng, n):
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    words = sorted(words)
    rng.shuffle(words)
    # Zipf-like weights, as in natural language.
    cum, total = [], 0.0
    for i in range(len(words)):
        total += 1.0 / (i + 1)
        cum.append(total)
    return words, cum


def prose(rng, vocab, size):
    words, cum = vocab
    out, length = [], 0
    while length < size:
        n = rng.randint(40, 160)
        ws = rng.choices(words, cum_weights=cum, k=n)
        ws[0] = ws[0].capitalize()
        para = []
        for i, w in enumerate(ws):
            para.append(w)
            if rng.random() < 0.07 and i + 1 < n:
                para[-1] += "."
                ws[i + 1] = ws[i + 1].capitalize()
            elif rng.random() < 0.05:
                para[-1] += ","
        text = " ".join(para) + ".\n\n"
        out.append(text)
        length += len(text)
    return "".join(out).encode()[:size]


LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR"]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]


def logs(rng, vocab, size):
    words, _ = vocab
    t = BASE_MTIME + rng.randrange(MTIME_SPAN)
    out, length = [], 0
    while length < size:
        t += rng.randint(0, 3)
        s = t % 86400
        line = (
            f"2024-{1 + t // 2592000 % 12:02d}-{1 + t // 86400 % 28:02d}T"
            f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{rng.randrange(1000):03d}Z "
            f"{rng.choice(LEVELS):<5} [worker-{rng.randrange(16)}] "
            f"{rng.choice(METHODS)} /api/v{rng.randint(1, 3)}/{rng.choice(words)}/{rng.randrange(100000)} "
            f"status={rng.choice((200, 200, 200, 201, 204, 304, 404, 500))} "
            f"dur={rng.randrange(2000)}ms id={rng.getrandbits(64):016x}\n"
        )
        out.append(line)
        length += len(line)
    return "".join(out).encode()[:size]


TYPES = ["u32", "u64", "usize", "i64", "bool", "String", "Vec<u8>", "Option<u32>"]


def source(rng, vocab, size):
    words, _ = vocab
    out, length = [], 0
    while length < size:
        name = "_".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        args = ", ".join(f"{rng.choice(words)}: {rng.choice(TYPES)}" for _ in range(rng.randint(0, 4)))
        body = []
        for _ in range(rng.randint(2, 14)):
            v = rng.choice(words)
            kind = rng.randrange(4)
            if kind == 0:
                body.append(f"    let {v} = {rng.choice(words)}.{rng.choice(words)}({rng.randrange(4096)});")
            elif kind == 1:
                body.append(f"    if {v} > {rng.randrange(100)} {{\n        return Err(Error::{rng.choice(words).capitalize()});\n    }}")
            elif kind == 2:
                body.append(f"    for i in 0..{rng.randrange(64)} {{\n        {v}[i] ^= {rng.choice(words)}[i];\n    }}")
            else:
                body.append(f"    // {' '.join(rng.choice(words) for _ in range(rng.randint(3, 10)))}")
        fn = f"/// {' '.join(rng.choice(words) for _ in range(rng.randint(4, 12)))}\npub fn {name}({args}) -> Result<{rng.choice(TYPES)}, Error> {{\n" + "\n".join(body) + "\n    Ok(Default::default())\n}\n\n"
        out.append(fn)
        length += len(fn)
    return "".join(out).encode()[:size]


def log_uniform(rng, lo, hi):
    return int(lo * (hi / lo) ** rng.random())


# ---------------------------------------------------------------- binaries


def find_elf_binaries(seed):
    """x86-64 ELF programs and libraries under /usr/bin and /usr/lib.

    Ordered by a hash of path and seed, so that installing or removing a
    package changes only the files it adds or removes, not the whole choice.
    """
    found, seen = [], set()
    for top in ("/usr/bin", "/usr/lib"):
        for dirpath, dirnames, filenames in os.walk(top):
            # Separate debug symbols are ELF files without machine code.
            dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) != "/usr/lib/debug")
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or not (16 * 1024 <= st.st_size <= 24 * MIB):
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue
                try:
                    with open(p, "rb") as f:
                        head = f.read(20)
                except OSError:
                    continue
                if len(head) == 20 and head[:4] == ELF_MAGIC and int.from_bytes(head[18:20], "little") == EM_X86_64:
                    seen.add((st.st_dev, st.st_ino))
                    found.append((p, st.st_size))
    found.sort(key=lambda f: hashlib.sha1(f"{seed}:{f[0]}".encode()).digest())
    return found


# ---------------------------------------------------------------- layout

TOP = ["Windows", "Program Files", "Users", "ProgramData", "var"]
SUB = ["System32", "drivers", "en-US", "config", "logs", "cache", "assets", "src", "lib", "data",
       "temp", "WinSxS", "servicing", "Fonts", "inf", "café", "日本語", "Résumé files", "amd64_x"]


def make_dirs(tree, rng, count):
    tree.mkdir("Windows")
    for t in TOP:
        tree.mkdir(t)
    made = list(TOP)
    while len(made) < count:
        parent = rng.choice(made)
        if parent.count("/") >= 9:
            continue
        child = f"{parent}/{rng.choice(SUB)}{rng.randrange(40) if rng.random() < 0.6 else ''}"
        if child in tree.names_used:
            continue
        tree.mkdir(child)
        made.append(child)
    # A chain of deep directories, and a few empty ones.
    deep = "Windows/" + "/".join(f"level{i}" for i in range(1, 16))
    tree.mkdir(deep)
    for i in range(5):
        tree.mkdir(f"{rng.choice(made)}/empty-dir-{i}")
    return made


def generate(root, mb, seed):
    rng = random.Random(seed)
    tree = Tree(root, rng)
    total = mb * 1_000_000
    dirs = make_dirs(tree, rng, max(20, mb))
    vocab = make_vocabulary(rng, 3000)

    def pick_dir():
        return rng.choice(dirs)

    # Binaries.
    elfs = find_elf_binaries(seed)
    budget = total * 30 // 100
    used = 0
    for src, size in elfs:
        if used >= budget:
            break
        if used + size > budget * 11 // 10:
            continue
        with open(src, "rb") as f:
            data = f.read()
        tree.write(f"{pick_dir()}/{os.path.basename(src)}", data)
        used += len(data)
    if used < budget // 2:
        print(f"gen-bench-tree: only {used} bytes of x86-64 ELF binaries found under /usr", file=sys.stderr)

    # Text.
    for kind, gen, ext, share in (("doc", prose, ".txt", 10), ("log", logs, ".log", 10), ("src", source, ".rs", 10)):
        budget, used = total * share // 100, 0
        while used < budget:
            size = min(log_uniform(rng, 1024, 1 * MIB), budget - used)
            tree.write(f"{pick_dir()}/{kind}{rng.randrange(10000)}{ext}", gen(rng, vocab, size))
            used += size

    # Random data; the biggest file is at most a tenth of the tree.
    budget, used = total * 20 // 100, 0
    big = max(64 * 1024, min(16 * MIB, total // 10))
    while used < budget:
        size = min(log_uniform(rng, 16 * 1024, big), budget - used)
        tree.write(f"{pick_dir()}/blob{rng.randrange(10000)}.bin", rng.randbytes(size))
        used += size

    # Small files, many per directory.
    budget, used = total * 5 // 100, 0
    small_dirs = [d for d in dirs if d.count("/") >= 1] or dirs
    while used < budget:
        size = rng.randint(0, 4096)
        d = rng.choice(small_dirs)
        if rng.random() < 0.7:
            data = prose(rng, vocab, size) if size else b""
            name = f"{d}/note{rng.randrange(100000)}.ini"
        else:
            data = rng.randbytes(size)
            name = f"{d}/cache{rng.randrange(100000)}.dat"
        tree.write(name, data)
        used += max(size, 1)

    # Duplicates: same content as an existing file, own inode.
    budget, used = total * 10 // 100, 0
    originals = list(tree.files)
    misses = 0
    while used < budget and originals and misses < 1000:
        src = rng.choice(originals)
        size = os.path.getsize(tree.path(src))
        if size > budget - used + MIB:
            misses += 1
            continue
        with open(tree.path(src), "rb") as f:
            data = f.read()
        tree.write(f"{pick_dir()}/copy of {os.path.basename(src)}", data, track=False)
        used += size

    # Empty files.
    empties = [tree.write(f"{pick_dir()}/empty{i}.txt", b"", track=False) for i in range(max(20, mb * 2 // 3))]

    # Hard links: groups of two to four names for a file, one group for an empty file.
    links = 0
    for src in rng.sample(tree.files, min(len(tree.files), max(10, mb))):
        for _ in range(rng.randint(1, 3)):
            dst = tree.unique(f"{pick_dir()}/link-{os.path.basename(src)}")
            os.link(tree.path(src), tree.path(dst))
            links += 1
    os.link(tree.path(empties[0]), tree.path(tree.unique(f"{pick_dir()}/empty-hardlink.txt")))

    # Names that differ only in case, and a name with spaces and dots.
    tree.write("Windows/ReadMe.txt", b"upper\n")
    tree.write("Windows/readme.txt", b"lower\n")
    tree.write("Users/a name with  spaces...txt", b"spaces\n")

    # Symbolic links: relative (file, directory, up the tree), absolute inside
    # the tree, absolute outside, dangling.
    symlinks = []
    for i in range(12):
        target = rng.choice(tree.files)
        at = tree.unique(f"{pick_dir()}/symlink{i}")
        rel = os.path.relpath(target, os.path.dirname(at) or ".")
        os.symlink(rel, tree.path(at))
        symlinks.append(at)
    for i in range(4):
        target = rng.choice(dirs)
        at = tree.unique(f"{pick_dir()}/dirlink{i}")
        os.symlink(os.path.relpath(target, os.path.dirname(at) or "."), tree.path(at))
        symlinks.append(at)
    for i in range(4):
        target = rng.choice(tree.files)
        at = tree.unique(f"{pick_dir()}/abslink{i}")
        os.symlink(os.path.join(os.path.abspath(root), target), tree.path(at))
        symlinks.append(at)
    for i, target in enumerate(("/usr/bin/env", "/etc/hostname", "../../../outside-the-tree", "missing-target")):
        at = tree.unique(f"{pick_dir()}/extlink{i}")
        os.symlink(target, tree.path(at))
        symlinks.append(at)

    # Timestamps, files first, then directories from the deepest up.
    def stamp(rel, follow=True):
        ns = (BASE_MTIME + rng.randrange(MTIME_SPAN)) * 1_000_000_000 + rng.randrange(1_000_000_000)
        os.utime(tree.path(rel), ns=(ns, ns), follow_symlinks=follow)

    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        # Symbolic links to directories are listed with the directories.
        dir_links = [n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
        for name in sorted(filenames + dir_links):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            stamp(rel, follow=False)
    for d in sorted(tree.dirs, key=lambda d: (-d.count("/"), d)):
        stamp(d)
    stamp(".")

    return {
        "bytes": tree.bytes,
        "files": len(tree.names_used) - len(tree.dirs),
        "dirs": len(tree.dirs),
        "hardlinks": links + 1,
        "symlinks": len(symlinks),
    }


def main():
    args = parse_args()
    if os.path.exists(args.dir) and (not os.path.isdir(args.dir) or os.listdir(args.dir)):
        print(f"gen-bench-tree: {args.dir} exists and is not an empty directory", file=sys.stderr)
        return 1
    os.makedirs(args.dir, exist_ok=True)
    try:
        s = generate(args.dir, args.mb, args.seed)
    except BaseException:
        shutil.rmtree(args.dir, ignore_errors=True)
        raise
    print(
        f"gen-bench-tree: {args.dir}: {s['bytes'] / 1e6:.0f} MB in {s['files']} files, "
        f"{s['dirs']} directories, {s['hardlinks']} extra hard links, {s['symlinks']} symlinks",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
