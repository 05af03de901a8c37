"""Inline SVG charts (no scripts, no external assets). Every text goes through markupsafe.escape.
Colours come from CSS classes in static/app.css, so charts follow the page style."""
from __future__ import annotations

from markupsafe import Markup, escape

ROW_H = 22
LABEL_W = 170


def _pct(v):
    return "–" if v is None else "%.0f%%" % (v * 100)


def stacked_bars(rows, width=560, aria=""):
    """rows: [{"label", "href"?, "segments": [(count, css_class, title)], "note"}] -> horizontal stacked bars."""
    if not rows:
        return Markup("")
    bar_w = width - LABEL_W - 70
    h = ROW_H * len(rows) + 6
    out = ['<svg class="chart" role="img" aria-label="%s" width="%d" height="%d" viewBox="0 0 %d %d">'
           % (escape(aria), width, h, width, h)]
    for i, row in enumerate(rows):
        y = i * ROW_H + 3
        total = sum(s[0] for s in row["segments"]) or 1
        label = escape(row["label"])
        if row.get("href"):  # the whole row (label and bar) is the link: a click anywhere on it follows it
            out.append(Markup('<a href="%s">') % row["href"])
        out.append('<text class="lbl" x="%d" y="%d" text-anchor="end">%s</text>' % (LABEL_W - 6, y + 14, label))
        x = LABEL_W
        for count, css, title in row["segments"]:
            w = bar_w * count / total
            if w > 0:
                out.append('<rect class="%s" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s</title></rect>'
                           % (escape(css), x, y, w, ROW_H - 6, escape(title)))
            x += w
        if row.get("href"):
            out.append("</a>")
        out.append('<text class="val" x="%d" y="%d">%s</text>' % (LABEL_W + bar_w + 6, y + 14, escape(row.get("note", ""))))
    out.append("</svg>")
    return Markup("".join(out))


def rate_rows(items):
    """[(label, href, domestic, foreign, unknown, rate)] -> rows for stacked_bars."""
    return [{"label": label, "href": href, "note": _pct(rate),
             "segments": [(d, "dom", "domestic %d" % d), (f, "for", "foreign %d" % f), (u, "unk", "unknown %d" % u)]}
            for label, href, d, f, u, rate in items]


def line_chart(series, labels, width=560, height=180, ymax=100.0, aria=""):
    """series: [(css_class, name, [value|None...])] over x ``labels``; values 0..ymax."""
    if not labels:
        return Markup("")
    left, right, top, bottom = 36, 10, 10, 24
    pw, ph = width - left - right, height - top - bottom
    n = len(labels)
    xs = [left + (pw * i / (n - 1) if n > 1 else pw / 2) for i in range(n)]
    out = ['<svg class="chart" role="img" aria-label="%s" width="%d" height="%d" viewBox="0 0 %d %d">'
           % (escape(aria), width, height, width, height)]
    for frac in (0, 0.5, 1):
        y = top + ph * (1 - frac)
        out.append('<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>' % (left, y, width - right, y))
        out.append('<text class="axis" x="%d" y="%.1f" text-anchor="end">%g</text>' % (left - 4, y + 4, ymax * frac))
    step = max(1, n // 6)
    ticks = list(range(0, n, step))
    if ticks[-1] != n - 1:  # always label the newest point; drop a tick that would collide with it
        if n - 1 - ticks[-1] < step / 2.0 and len(ticks) > 1:
            ticks.pop()
        ticks.append(n - 1)
    for i in ticks:
        anchor = "end" if i == n - 1 and n > 1 else "middle"
        out.append('<text class="axis" x="%.1f" y="%d" text-anchor="%s">%s</text>'
                   % (xs[i] + (4 if anchor == "end" else 0), height - 6, anchor, escape(labels[i])))
    for css, name, values in series:
        pts = [(xs[i], top + ph * (1 - min(max(v, 0), ymax) / ymax)) for i, v in enumerate(values) if v is not None]
        if len(pts) > 1:
            out.append('<polyline class="%s" points="%s"><title>%s</title></polyline>'
                       % (escape(css), " ".join("%.1f,%.1f" % p for p in pts), escape(name)))
        for (x, y), v in zip(pts, [v for v in values if v is not None]):
            out.append('<circle class="%s" cx="%.1f" cy="%.1f" r="3"><title>%s %.1f</title></circle>' % (escape(css), x, y, escape(name), v))
    out.append("</svg>")
    return Markup("".join(out))
