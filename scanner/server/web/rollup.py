"""The working paper's summary rolled up over an org subtree: per 控制点 the test-unit verdicts of
every host's latest report added up, the problems by risk, and the hosts whose report could not be
read. Each host is judged by scanner/render/assessment.py exactly as its own report page is; its
summary is kept between views (store/paper_summaries.py) while nothing it was made from changes."""
from __future__ import annotations

from scanner.render import assessment

MAX_HOSTS = 2000


def controls_rollup(rows):
    """{by_control: [(area, counts)], hosts, bad: [hostname], risks: {high, medium, low, guide},
    score: {value, counted, pending, excluded}, per_host: [{host_id, hostname, org_path, score, risks}]}
    from rows {host_id, hostname, org_path, summary} (store/paper_summaries.py ``latest``; summary None:
    the host's latest report could not be read)."""
    order, index = [], {}
    risks = dict((r, 0) for r in assessment.RISKS)
    risks["guide"] = 0
    bad, per_host = [], []
    units = dict((v, 0) for v in assessment.VERDICTS)
    for row in rows:
        got = row["summary"]
        if got is None:
            bad.append(row["hostname"])
            continue
        for key, value in got["risks"].items():
            risks[key] += value
        risks["guide"] += got["guide"]
        for verdict, n in got["units"].items():
            units[verdict] += n
        for area, counts in got["by_control"]:
            key = (area or {}).get("zh") if isinstance(area, dict) else str(area)
            if key not in index:
                index[key] = (area, dict((k, 0) for k in counts))
                order.append(key)
            total = index[key][1]
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
        per_host.append({"host_id": row["host_id"], "hostname": row["hostname"], "org_path": row["org_path"],
                         "score": got["score"], "risks": got["risks"]})
    counted = units["conform"] + units["partial"] + units["nonconform"] + units["pending"]
    value = round(100.0 * (units["conform"] + 0.5 * units["partial"]) / counted, 1) if counted else None
    return {"by_control": [index[k] for k in order], "hosts": len(per_host), "bad": bad, "risks": risks,
            "score": {"value": value, "counted": counted, "pending": units["pending"],
                      "excluded": units["not_applicable"]}, "per_host": per_host}
