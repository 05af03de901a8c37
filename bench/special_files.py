#!/usr/bin/env python3
"""The on-demand SUID/SGID and world-writable walk (scanner/collect/special_files.py) on this host.

    python bench/special_files.py --runs 5 [--root DIR]

Prints entries walked, findings and seconds per run (the first run may be cold-cache), and the
peak RSS of this process.
"""
from __future__ import print_function

import argparse
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--root", default="/")
    opts = ap.parse_args()
    from scanner.collect import special_files
    from scanner.context import Context
    times, facts = [], None
    for _ in range(opts.runs):
        ctx = Context(root=opts.root)
        ctx.set_collector("special_files")
        t0 = time.perf_counter()
        facts = special_files.collect(ctx)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"root": opts.root, "entries": facts["entries"], "complete": facts["complete"],
                      "counts": facts["counts"], "first_s": round(times[0], 3),
                      "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}))


if __name__ == "__main__":
    main()
