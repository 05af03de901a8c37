"""Inline SVG charts for the HTML report (no script, no external reference). Every text is escaped."""
from __future__ import absolute_import

from html import escape

COLORS = {"domestic": "#2e7d32", "foreign": "#c62828", "unknown": "#9e9e9e"}


def _n(value):
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _e(text):
    return escape("" if text is None else str(text), quote=True)


def localization_bars(rows, legend, title, width=680):
    """Stacked horizontal bars: rows = [(label, {"domestic", "foreign", "unknown"}, rate_text)],
    legend = {"domestic": label, ...}. Bars show the share of each origin; the text is the rate."""
    label_w, rate_w, row_h, bar_h, top = 150, 70, 28, 18, 8
    bar_w = width - label_w - rate_w - 10
    height = top + row_h * len(rows) + 30
    out = ['<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="%d" height="%d" '
           'viewBox="0 0 %d %d" aria-label="%s"><title>%s</title>' % (width, height, width, height,
                                                                      _e(title), _e(title))]
    for index, (label, counts, rate_text) in enumerate(rows):
        y = top + index * row_h
        total = sum(_n(counts.get(k)) for k in ("domestic", "foreign", "unknown"))
        weight = ' font-weight="bold"' if index == 0 else ""
        out.append('<text x="%d" y="%d" text-anchor="end" class="chart-label"%s>%s</text>'
                   % (label_w - 8, y + bar_h - 4, weight, _e(label)))
        x = float(label_w)
        if total:
            for key in ("domestic", "foreign", "unknown"):
                n = _n(counts.get(key))
                if not n:
                    continue
                w = bar_w * n / float(total)
                out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" class="bar-%s">'
                           '<title>%s: %d</title></rect>' % (x, y, w, bar_h, COLORS[key], key,
                                                             _e(legend[key]), n))
                x += w
        else:
            out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#bbb"/>'
                       % (label_w, y, bar_w, bar_h))
        out.append('<text x="%d" y="%d" class="chart-rate"%s>%s</text>'
                   % (label_w + bar_w + 8, y + bar_h - 4, weight, _e(rate_text)))
    y = top + row_h * len(rows) + 8
    x = label_w
    for key in ("domestic", "foreign", "unknown"):
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (x, y, COLORS[key]))
        out.append('<text x="%d" y="%d" class="chart-legend">%s</text>' % (x + 16, y + 11, _e(legend[key])))
        x += 16 + 14 * max(4, len(legend[key])) + 10
    out.append("</svg>")
    return "".join(out)
