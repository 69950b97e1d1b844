#!/usr/bin/env python3
"""damage.py SEED DATA-FILE... [-- SIDE-FILE...]: applies one damage, all
of whose choices come from SEED, to one of the files (a data file three
times in four), and prints what it did on one line. Used by the
corruption campaign (t9002); the files are a local backend's own.

Damages: flip (1-8 bit flips), zeros (a run of zero bytes), truncate,
junk (a run of random bytes), header (bit flips in the first 100 bytes),
swap (two files trade contents)."""
import os
import random
import sys

KINDS = ["flip", "zeros", "truncate", "junk", "header", "swap"]


def regular(paths):
    return [p for p in paths if os.path.isfile(p) and not os.path.islink(p)]


def main():
    rng = random.Random(int(sys.argv[1]))
    args = sys.argv[2:]
    if "--" in args:
        i = args.index("--")
        data, side = regular(args[:i]), regular(args[i + 1:])
    else:
        data, side = regular(args), []
    every = data + side
    if not every:
        print("nothing to damage")
        return
    pool = data if data and (not side or rng.random() < 0.75) else side
    path = rng.choice(pool)
    kind = rng.choice(KINDS)
    with open(path, "rb") as f:
        b = bytearray(f.read())
    n = len(b)
    if kind == "swap":
        others = [p for p in every if p != path]
        if not others:
            kind = "junk"
        else:
            other = rng.choice(others)
            with open(other, "rb") as f:
                ob = f.read()
            with open(other, "wb") as f:
                f.write(b)
            with open(path, "wb") as f:
                f.write(ob)
            print("swap %s (%d bytes) and %s (%d bytes)" % (path, n, other, len(ob)))
            return
    if n == 0:
        kind = "junk"
    if kind in ("flip", "header"):
        flips = rng.randint(1, 8)
        top = min(n, 100) if kind == "header" else n
        offs = sorted(rng.randrange(top) for _ in range(flips))
        for off in offs:
            b[off] ^= 1 << rng.randrange(8)
        what = "%s: %d bit flips at %s" % (kind, flips, offs)
    elif kind == "zeros":
        off = rng.randrange(n)
        k = rng.randint(1, 4096)
        b[off:off + k] = bytes(len(b[off:off + k]))
        what = "zeros: %d bytes at %d" % (len(b[off:off + k]), off)
    elif kind == "truncate":
        k = rng.randrange(n)
        del b[k:]
        what = "truncate: %d of %d bytes kept" % (k, n)
    else:
        off = rng.randrange(n + 1)
        k = rng.randint(1, 8192)
        b[off:off + k] = rng.randbytes(k)
        what = "junk: %d random bytes at %d" % (k, off)
    with open(path, "wb") as f:
        f.write(b)
    print("%s %s (%d bytes)" % (path, what, n))


main()
