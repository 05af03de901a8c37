"""A table laid out by display width (CJK characters take two cells) to fit the terminal: natural
column widths, the widest columns narrowed (their cells wrapped by scanner.render.textwidth) until
the table fits, two spaces between columns, a dashed rule under the header."""
from __future__ import absolute_import

from scanner.render.textwidth import ljust, width, wrap

GAP = 2
MIN_COLUMN = 6
MAX_FLOOR = 30   # a column is not narrowed below its longest word or name, up to this many cells
MAX_ID = 48
SHORT = 16


def _longest_unit(text):
    """The widest piece a column must hold without breaking a word (capped)."""
    return max([width(w) for w in text.replace("\n", " ").split(" ")] or [0])


def layout(headers, rows, total):
    """Column widths fitting ``total`` cells (if at all possible)."""
    cols = len(headers)
    natural = [max([width(line) for cell in [headers[i]] + [r[i] for r in rows]
                    for line in str(cell).split("\n")] or [0]) for i in range(cols)]
    floor = [min(natural[i], max(MIN_COLUMN, _longest_unit(headers[i]),
                                 min(MAX_FLOOR, max([_longest_unit(str(r[i])) for r in rows] or [0]))))
             for i in range(cols)]
    widest_word = [max([_longest_unit(str(r[i])) for r in rows] or [0]) for i in range(cols)]
    # a column of ids (no Chinese) keeps its longest id whole, up to MAX_ID cells; the last column
    # may run past the edge instead, so its long words do not squeeze the others
    floor = [max(floor[i], min(natural[i], widest_word[i], MAX_ID)) if i < cols - 1 and not any(
        width(ch) == 2 for r in rows for ch in str(r[i])) else floor[i] for i in range(cols)]
    # short columns (a category, a version, a status) are never wrapped: their cells stay one line
    floor = [max(floor[i], min(natural[i], SHORT)) if i < cols - 1 else floor[i] for i in range(cols)]
    widths = list(natural)
    budget = total - GAP * (cols - 1)
    wrappable = [natural[i] > SHORT and any(" " in str(c).strip() or any(width(ch) == 2 for ch in str(c)) for c in
                                            [r[i] for r in rows]) for i in range(cols)]
    head_word = [_longest_unit(headers[i]) for i in range(cols)]
    least = [min(natural[i], max(MIN_COLUMN, head_word[i])) for i in range(cols)]
    # prose columns may narrow to a short phrase (12 cells), never below their longest short word
    prose = [min(natural[i], max(least[i], min(12, widest_word[i]))) for i in range(cols)]
    # narrow the column with the most room above its limit, one cell at a time: first down to its
    # longest word or phrase; then columns of prose further (they wrap); cut words only as a last resort
    for limits in (floor, [prose[i] if wrappable[i] else floor[i] for i in range(cols)],
                   [least[i] if wrappable[i] else floor[i] for i in range(cols)], least):
        widths = _shrink(widths, limits, budget)
    return widths


def _shrink(widths, limits, budget):
    """Cut the widest columns first (a water level): every column wider than the level is cut to
    it, never below its limit; the level is the highest at which the table fits."""
    if sum(widths) <= budget:
        return widths

    def at(level):
        return [max(l, min(w, level)) for w, l in zip(widths, limits)]
    low, high = 0, max(widths)
    while low < high:
        mid = (low + high + 1) // 2
        if sum(at(mid)) <= budget:
            low = mid
        else:
            high = mid - 1
    out = at(low)
    spare = budget - sum(out)
    for i in range(len(out)):   # hand the cells left over to the columns that were cut
        if spare <= 0:
            break
        if out[i] < widths[i] and out[i] >= limits[i]:
            out[i] += 1
            spare -= 1
    return out


def render(headers, rows, total):
    rows = [[("" if c is None else str(c)) for c in row] for row in rows]
    headers = [str(h) for h in headers]
    widths = layout(headers, rows, total)
    out = []

    last = len(headers) - 1

    def cell_lines(i, cell):
        lines = wrap(cell, widths[i], max_phrase=widths[i]) if cell else [""]
        if i == last:
            return lines   # the last column may run past the edge rather than break a long path
        out = []
        for line in lines:   # a word wider than an inner column is cut, or every column after it shifts
            while width(line) > widths[i]:
                cut, used = 0, 0
                while cut < len(line) and used + width(line[cut]) <= widths[i]:
                    used += width(line[cut])
                    cut += 1
                out.append(line[:cut])
                line = line[cut:]
            out.append(line)
        return out

    def emit(cells):
        wrapped = [cell_lines(i, cell) for i, cell in enumerate(cells)]
        height = max(len(w) for w in wrapped)
        for n in range(height):
            parts = [ljust(wrapped[i][n] if n < len(wrapped[i]) else "", widths[i]) for i in range(len(cells))]
            out.append((" " * GAP).join(parts).rstrip())

    emit(headers)
    out.append((" " * GAP).join("-" * w for w in widths))
    for row in rows:
        emit(row)
    return "\n".join(out)
