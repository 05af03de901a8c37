"""Benchmark: render the HTML (and JUnit, CSV) report of a host with 200 results and 300 components.

Target: HTML under 0.2 s. Usage: python bench/render_html.py [--results N] [--components N] [--repeat N]
Prints the best and median of the repeats, cold (first render in the process) separately.
"""
from __future__ import absolute_import, print_function

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.dirname(HERE))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=200)
    parser.add_argument("--components", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--limit", type=float, default=0.2, help="seconds allowed for one HTML render")
    args = parser.parse_args(argv)

    from report_fixtures import big_report
    report = big_report(args.results, args.components)
    from scanner.render import render

    t0 = time.perf_counter()
    html = render(report, "html", "zh")
    cold = time.perf_counter() - t0
    status = 0
    print("host: %d results, %d components; HTML %d KiB" % (len(report["results"]),
                                                           len(report["inventory"]["components"]),
                                                           len(html.encode("utf-8")) // 1024))
    print("%-6s cold %.4f s" % ("html", cold))
    for fmt in ("html", "junit", "csv"):
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            render(report, fmt, "zh")
            times.append(time.perf_counter() - t0)
        times.sort()
        median = times[len(times) // 2]
        print("%-6s best %.4f s  median %.4f s  (%d runs)" % (fmt, times[0], median, args.repeat))
        if fmt == "html" and max(median, cold) > args.limit:
            print("FAIL: HTML render slower than %.2f s" % args.limit)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
