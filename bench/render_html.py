"""Benchmark: render the HTML (and JUnit, CSV) report of a host with 200 results and 300 components.

Target: one HTML render under 0.2 s. Usage:
    python bench/render_html.py [--results N] [--components N] [--repeat N] [--limit S]
Prints the one-time loading of the string catalogues and of the product catalog (paid once per
process by every command, and already paid by a scan before it renders), the first render after
that, best and median of the repeats, and the wall time of a whole `xcscan report --format html`
process on the same report. Exit 1 when the median HTML render exceeds the limit.
"""
from __future__ import absolute_import, print_function

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.dirname(HERE))


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=200)
    parser.add_argument("--components", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--limit", type=float, default=0.2, help="seconds allowed for one HTML render")
    args = parser.parse_args(argv)

    from report_fixtures import big_report
    report = big_report(args.results, args.components)
    from scanner.catalog import default_catalog
    from scanner.i18n import catalogue
    from scanner.render import render

    _, t_locale = _timed(lambda: (catalogue("zh"), catalogue("en")))
    _, t_catalog = _timed(default_catalog)
    html, first = _timed(lambda: render(report, "html", "zh"))
    print("host: %d results, %d components; HTML %d KiB" % (len(report["results"]),
                                                           len(report["inventory"]["components"]),
                                                           len(html.encode("utf-8")) // 1024))
    print("one-time loading: string catalogues %.4f s, product catalog %.4f s" % (t_locale, t_catalog))
    print("%-6s first %.4f s" % ("html", first))
    status = 0
    for fmt in ("html", "junit", "csv"):
        times = sorted(_timed(lambda: render(report, fmt, "zh"))[1] for _ in range(args.repeat))
        median = times[len(times) // 2]
        print("%-6s best %.4f s  median %.4f s  (%d runs)" % (fmt, times[0], median, args.repeat))
        if fmt == "html" and median > args.limit:
            print("FAIL: HTML render slower than %.2f s" % args.limit)
            status = 1
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "big.json")
        with open(src, "w", encoding="utf-8") as fh:
            json.dump(report, fh, ensure_ascii=False)
        cmd = [sys.executable, "-m", "scanner", "report", src, "--format", "html", "-o",
               os.path.join(tmp, "big.html"), "--lang", "zh"]
        _, wall = _timed(lambda: subprocess.check_call(cmd))
        print("whole process `xcscan report big.json --format html -o big.html`: %.3f s" % wall)
    return status


if __name__ == "__main__":
    sys.exit(main())
