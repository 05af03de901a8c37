"""GET /api/v1/changes pages with a keyset cursor (store/changes.py ``page``): each page starts after
the key of the previous page's last row, so a change recorded between two requests (a report stored
late) never makes a row appear twice or go missing across the pages, as an offset into the rebuilt
feed did; equal rows (the same component twice on a host) are each listed once."""
from __future__ import annotations

from scanner.server.store import changes


def _host(i, org="/gov/a"):
    return {"host_id": "h%03d" % i, "hostname": "host-%03d" % i, "org_path": org}


def _new(i, rule, severity="high", after="fail"):
    return dict(_host(i), profile="mlps-l3", rule_id=rule, severity=severity, title={"zh": rule, "en": rule},
                before="pass", after=after)


def _comp(i, product):
    return dict(_host(i), category="database", product_id=product, name_zh=product, name_en=product,
                origin="foreign", version="1", substitutes=[])


def _feed(new, added):
    got = {"from": 0, "to": 10, "org": None, "hosts": 50, "new": list(new), "fixed": [], "added": list(added),
           "removed": [], "substitutions": [], "stopped": [], "joined": [], "counts": {}, "new_by_severity": {}}
    for k in changes.SECTIONS:
        got[k].sort(key=lambda r, k=k: changes.row_key(k, r))
    return got


def _all_pages(feeds, limit):
    """Page through, taking each next page from the next feed (the feed as it is at that request)."""
    rows, after, n = [], None, 0
    while True:
        got = feeds[min(n, len(feeds) - 1)]
        page, after = changes.page(got, after, limit)
        rows += [(k, r) for k in changes.SECTIONS for r in page[k]]
        n += 1
        if after is None:
            return rows
        # through the cursor's text, as a client sends it back
        after = changes.read_cursor(changes.cursor(0, 10, None, after))["after"]


def test_a_change_recorded_between_pages_shifts_nothing_after_the_cursor():
    new = [_new(i, "r.%02d" % j, severity=("critical", "high", "low")[j % 3]) for i in range(10) for j in range(3)]
    added = [_comp(i, "oracle-db") for i in range(5)] + [_comp(7, "mysql"), _comp(7, "mysql")]  # twice on one host
    before = _feed(new, added)
    whole = [(k, r) for k in changes.SECTIONS for r in before[k]]
    assert len(whole) == 37
    # unchanged feed: every row once, in order, whatever the page size
    for limit in (1, 4, 7, 30, 37, 100):
        assert _all_pages([before], limit) == whole, limit
    # after the first page a late report adds a critical finding that sorts before everything read so far
    late = _new(3, "r.late", severity="critical")
    after = _feed(new + [late], added)
    got = _all_pages([before, after], 7)
    keys = [(k, changes.row_key(k, r)) for k, r in got]
    assert len(keys) == len(set(keys)) + 1  # only the component listed twice on purpose repeats
    assert [r for _k, r in got] == [r for _k, r in whole]  # the late row sorts before the cursor: not shown
    # a late row after the cursor is shown where it sorts, once
    late2 = _new(9, "r.zz", severity="low")
    later = _feed(new + [late2], added)
    got = _all_pages([before, later], 7)
    assert [r for _k, r in got].count(late2) == 1 and len(got) == len(whole) + 1
    # an offset into the rebuilt feed (the old cursor) would have listed a row twice here
    first, _a = changes.page(before, None, 7)
    shifted = [r for k in changes.SECTIONS for r in after[k]][7:14]
    assert first["new"][-1] in shifted


def test_cursor_of_another_shape_is_refused():
    import base64
    import json
    import pytest
    from scanner.server.errors import ApiError
    got = _feed([_new(1, "r.01")], [_comp(1, "x")])
    for bad in ({"v": 2, "from": 0, "to": 1, "org": None, "s": 9, "k": ["a"]},
                {"v": 2, "from": 0, "to": 1, "org": None, "s": 0, "k": []},
                {"v": 2, "from": 0, "to": 1, "org": None, "s": 0, "k": [{"x": 1}]},
                {"v": 1, "from": 0, "to": 1, "org": None, "offset": 3}):
        text = base64.urlsafe_b64encode(json.dumps(bad).encode()).decode()
        with pytest.raises(ApiError):
            changes.read_cursor(text)
    # a key whose values are of other types than the section's
    after = changes.read_cursor(base64.urlsafe_b64encode(json.dumps(
        {"v": 2, "from": 0, "to": 1, "org": None, "s": 0, "k": ["a", "b"]}).encode()).decode())["after"]
    with pytest.raises(ApiError) as err:
        changes.page(got, after, 5)
    assert err.value.status == 422
