"""The working paper's summary rolled up over an org subtree: per 控制点 the test-unit verdicts of
every host's latest report added up, the problems by risk, and the hosts whose report could not be
read. Each host is judged by scanner/render/assessment.py exactly as its own report page is."""
from __future__ import annotations

from scanner.render import assessment

MAX_HOSTS = 2000


def controls_rollup(rows):
    """{by_control: [(area, counts)], hosts, bad: [hostname], risks: {high, medium, low, guide},
    score: {value, counted, pending, excluded}, per_host: [{host_id, hostname, org_path, verdicts, score, risks}]}"""
    order, index = [], {}
    risks = dict((r, 0) for r in assessment.RISKS)
    risks["guide"] = 0
    bad, per_host = [], []
    units = dict((v, 0) for v in assessment.VERDICTS)
    for row in rows:
        doc = row["doc"]
        try:
            if doc is None:
                raise ValueError("unreadable")
            from scanner.render import view
            view.check_report(doc)
            got = assessment.assess(doc)
        except Exception:  # noqa: BLE001 - one bad report never stops the roll-up
            bad.append(row["hostname"])
            continue
        host_risks = dict((r, sum(1 for f in got["findings"] if f["risk"] == r)) for r in assessment.RISKS)
        for key, value in host_risks.items():
            risks[key] += value
        risks["guide"] += sum(1 for f in got["findings"] if f["guide"])
        for item in got["items"]:
            units[item["verdict"]] += 1
        for area, counts in got["by_control"]:
            key = (area or {}).get("zh") if isinstance(area, dict) else str(area)
            if key not in index:
                index[key] = (area, dict((k, 0) for k in counts))
                order.append(key)
            total = index[key][1]
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
        per_host.append({"host_id": row["host_id"], "hostname": row["hostname"], "org_path": row["org_path"],
                         "score": got["score"]["value"], "risks": host_risks})
    counted = units["conform"] + units["partial"] + units["nonconform"] + units["pending"]
    value = round(100.0 * (units["conform"] + 0.5 * units["partial"]) / counted, 1) if counted else None
    return {"by_control": [index[k] for k in order], "hosts": len(per_host), "bad": bad, "risks": risks,
            "score": {"value": value, "counted": counted, "pending": units["pending"],
                      "excluded": units["not_applicable"]}, "per_host": per_host}
