"""Measure: printed A4 pages of the HTML report (full and summary, zh and en) of the default
fixture hosts, as headless Chromium prints them (the assessor's "print to PDF").

Usage:
    python bench/report_pages.py [--hosts rhel-default debian-default ...] [--profile mlps-l3] [--keep DIR]
                                 [--fonts DIR]
Prints one line per host, language and edition: pages, and whether every page has the running
header (host name) and its page number. Targets (issue #16): full well under 40 pages, summary
under 8. Exit 1 when a target is missed. --keep DIR leaves the HTML and PDF files there.
--fonts DIR adds the fonts under DIR for this run only (a private fontconfig file on top of the
system's), e.g. a CJK font unpacked from Debian's fonts-wqy-microhei without installing it
(`apt-get download fonts-wqy-microhei && dpkg-deb -x fonts-wqy-microhei_*.deb DIR`); without a CJK
font Chromium prints Chinese as one-em boxes.
"""
from __future__ import absolute_import, print_function

import argparse
import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.dirname(HERE))

FRAME = {"organization": "某市财政局", "system": "非税收入管理系统", "level": 3, "assessors": ["张伟", "李娜"]}
LIMITS = {"html": 40, "summary": 8}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", nargs="+", default=["rhel-default", "debian-default"])
    parser.add_argument("--profile", default="mlps-l3")
    parser.add_argument("--keep", default=None, help="directory to keep the HTML and PDF files in")
    parser.add_argument("--fonts", default=None, help="directory of extra fonts for this run (e.g. a CJK font)")
    args = parser.parse_args(argv)

    from baseline_support import materialise
    from browser_support import CHROMIUM_ARGS, chromium_path
    from pdf_text import pages_text
    from playwright.sync_api import sync_playwright
    from scanner.pipeline import scan_report
    from scanner.render import render

    work = tempfile.mkdtemp(prefix="xcscan-pages-")
    if args.fonts:
        conf = os.path.join(work, "fonts.conf")
        with open(conf, "w") as fh:
            fh.write('<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>'
                     '<include ignore_missing="yes">/etc/fonts/fonts.conf</include><dir>%s</dir>'
                     '<cachedir>%s</cachedir></fontconfig>\n'
                     % (os.path.abspath(args.fonts), os.path.join(work, "fontcache")))
        os.environ["FONTCONFIG_FILE"] = conf   # read by the Chromium launched below
    out_dir = args.keep or work
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    missed = 0
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            for host in args.hosts:
                report = scan_report(root=materialise(host, work), profile=args.profile)
                report["assessment"] = dict(FRAME)
                for lang in ("zh", "en"):
                    for fmt in ("html", "summary"):
                        path = os.path.join(out_dir, "%s-%s-%s.html" % (host, lang, fmt))
                        with open(path, "w", encoding="utf-8") as fh:
                            fh.write(render(report, fmt, lang))
                        page.goto("file://" + path)
                        pdf = page.pdf(prefer_css_page_size=True)
                        with open(path[:-5] + ".pdf", "wb") as fh:
                            fh.write(pdf)
                        texts = pages_text(pdf)
                        total = len(texts)
                        marked = sum(1 for n, text in enumerate(texts, 1)
                                     if report["host"]["hostname"] in text[:300]
                                     and re.search(r"(?s)\b%d\b.*\b%d\b" % (n, total), text[:300]))
                        ok = total < LIMITS[fmt] and marked == total
                        missed += not ok
                        print("%-16s %s %-8s %3d pages (limit < %d), header and number on %d/%d  %s"
                              % (host, lang, "full" if fmt == "html" else fmt, total, LIMITS[fmt], marked, total,
                                 "ok" if ok else "MISSED"))
            browser.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
