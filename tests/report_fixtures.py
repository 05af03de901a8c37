"""Report documents for the renderer tests: the hand-written fixture, derived variants (markup
injected into every string, inventory only) and a large synthetic host for the benchmark."""
from __future__ import absolute_import

import copy
import json
import os

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "reports")

# Markup that would run, load something or add an element if any renderer failed to escape it,
# in text content, in attribute values (both quote styles) and in SVG.
PAYLOAD = ('<script>window.__pwned="script"</script><img src=x onerror="window.__pwned=\'img\'">'
           '"\'><b id="injected">x</b><svg onload="window.__pwned=\'svg\'"></svg>'
           '<style>body{display:none}</style><iframe src="https://example.invalid/"></iframe>'
           '<link rel="stylesheet" href="https://example.invalid/x.css">&amp;')


def load(name="kylin-l3.json"):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as fh:
        return json.load(fh)


def inject(value, payload=PAYLOAD):
    """A copy of a report with the payload appended to every string (and to data-keyed mappings'
    keys such as by_category and refs)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key] = inject(item, payload)
        for data_keyed in ("by_category", "refs", "effective"):
            if isinstance(out.get(data_keyed), dict):
                out[data_keyed] = dict((k + payload, v) for k, v in out[data_keyed].items())
        return out
    if isinstance(value, list):
        return [inject(v, payload) for v in value]
    if isinstance(value, str):
        return value + payload
    return value


def inventory_only(report):
    doc = copy.deepcopy(report)
    doc.pop("results", None)
    doc.pop("summary", None)
    return doc


def big_report(n_results=200, n_components=300):
    """A host with many results and components built from the fixture's realistic entries."""
    base = load()
    doc = copy.deepcopy(base)
    comps, results = [], []
    src_c, src_r = base["inventory"]["components"], base["results"]
    for i in range(n_components):
        c = copy.deepcopy(src_c[i % len(src_c)])
        c["product_id"] = "%s-%d" % (c.get("product_id") or "unknown", i)
        c["version"] = "%s.%d" % (c.get("version") or "0", i)
        comps.append(c)
    items = []
    for i in range(n_results):
        r = copy.deepcopy(src_r[i % len(src_r)])
        r["rule_id"] = "%s.%d" % (r["rule_id"], i)
        item_id = "L3-CES1-%02d" % (1 + i % 35)
        r["refs"] = dict(r.get("refs") or {}, gbt28448=item_id)
        results.append(r)
    for n in range(1, 36):
        items.append({"id": "L3-CES1-%02d" % n, "clause": "8.1.4.%d %s)" % (1 + n // 4, "abcd"[n % 4]),
                      "area": {"zh": "身份鉴别", "en": "Identification"}, "title": {"zh": "测评单元", "en": "Item"},
                      "status": "automated", "rules": [], "result": "fail"})
    doc["inventory"]["components"] = comps
    doc["results"] = results
    doc["summary"]["coverage"]["items"] = items
    return doc
