"""Realistic xcscan.report/1 documents and a signing agent, for the aggregator tests and bench.

Shapes follow ../shared/DESIGN.md and docs/api.md; the agent signs exactly like `xcscan agent`
(Ed25519 over b"xcscan-report/1\\n" + host_id + b"\\n" + timestamp + b"\\n" + body)."""
from __future__ import annotations

import base64
import gzip
import json
import random
import time
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PRODUCTS = {
    "cpu": [("kunpeng", "鲲鹏", "Kunpeng", "domestic"), ("phytium", "飞腾", "Phytium", "domestic"),
            ("hygon", "海光", "Hygon", "domestic"), ("intel-xeon", "英特尔至强", "Intel Xeon", "foreign")],
    "os": [("kylin", "银河麒麟", "Kylin", "domestic"), ("uos", "统信UOS", "UOS", "domestic"),
           ("openeuler", "openEuler", "openEuler", "domestic"), ("centos", "CentOS", "CentOS", "foreign")],
    "database": [("dm", "达梦数据库", "DM", "domestic"), ("kingbase", "人大金仓", "KingbaseES", "domestic"),
                 ("oracle-db", "Oracle 数据库", "Oracle Database", "foreign"), ("mysql", "MySQL", "MySQL", "foreign")],
    "middleware": [("tongweb", "东方通 TongWeb", "TongWeb", "domestic"), ("weblogic", "WebLogic", "WebLogic", "foreign")],
    "web-server": [("nginx", "Nginx", "Nginx", "foreign"), ("tengine", "Tengine", "Tengine", "domestic")],
    "crypto": [("openssl", "OpenSSL", "OpenSSL", "foreign"), ("tongsuo", "铜锁", "Tongsuo", "domestic")],
}
SUBSTITUTES = {"intel-xeon": ["kunpeng", "hygon"], "centos": ["kylin", "uos", "openeuler"], "oracle-db": ["dm", "kingbase"],
               "mysql": ["dm"], "weblogic": ["tongweb"], "nginx": ["tengine"], "openssl": ["tongsuo"]}
SEVERITIES = ["info", "low", "medium", "high", "critical"]
RULES = [("mlps.ia.password-max-age", "口令最长使用期限不超过90天", "Password maximum age is 90 days or less", "baseline", "medium"),
         ("mlps.ia.ssh-root-login", "禁止SSH直接以root登录", "SSH root login is disabled", "baseline", "high"),
         ("mlps.ac.telnet-disabled", "禁用Telnet服务", "Telnet service is disabled", "baseline", "high"),
         ("mlps.au.auditd-enabled", "启用审计服务", "auditd is enabled", "baseline", "medium"),
         ("mlps.ia.faillock", "登录失败锁定", "Login failure lockout is configured", "baseline", "medium"),
         ("crypto.sm.openssl-sm2", "OpenSSL支持SM2", "OpenSSL supports SM2", "crypto", "low"),
         ("crypto.ssh.weak-ciphers", "SSH不使用弱加密算法", "SSH uses no weak ciphers", "crypto", "high"),
         ("xc.cpu.domestic", "CPU为国产", "CPU is domestic", "localization", "info"),
         ("xc.db.domestic", "数据库为国产", "Database is domestic", "localization", "low")]
RULES += [("mlps.extra.rule-%02d" % i, "附加检查%d" % i, "Extra check %d" % i, "baseline",
           SEVERITIES[i % 5]) for i in range(40)]


def component(category, pid, zh, en, origin, version):
    return {"category": category, "product_id": pid, "name": {"zh": zh, "en": en},
            "vendor": {"zh": zh + "厂商", "en": en + " vendor"}, "origin": origin, "origin_policy": None,
            "version": version, "model": None, "confidence": "high",
            "evidence": [{"kind": "package", "value": "%s-%s" % (pid, version), "source": "/var/lib/rpm"}],
            "substitutes": SUBSTITUTES.get(pid, []), "details": {}}


def make_report(hostname="web01", machine_id=None, rng=None, profile="mlps-l3", domestic_bias=0.6,
                collected_at=None, fail_rules=None, extra_components=None, packages=200, results=True):
    """One report document. ``fail_rules`` forces those rule ids to fail (others random)."""
    rng = rng or random.Random(hostname)
    comps = []
    for cat, options in PRODUCTS.items():
        dom = [p for p in options if p[3] == "domestic"]
        forn = [p for p in options if p[3] == "foreign"]
        pick = rng.choice(dom if rng.random() < domestic_bias else forn)
        comps.append(component(cat, pick[0], pick[1], pick[2], pick[3], "%d.%d" % (rng.randint(1, 9), rng.randint(0, 20))))
    comps.extend(extra_components or [])
    counts = {}
    for c in comps:
        d = counts.setdefault(c["category"], {"domestic": 0, "foreign": 0, "unknown": 0})
        d[c["origin"] if c["origin"] in ("domestic", "foreign") else "unknown"] += 1
    dom = sum(v["domestic"] for v in counts.values())
    forn = sum(v["foreign"] for v in counts.values())
    doc = {
        "schema": "xcscan.report/1",
        "report_id": str(uuid.uuid4()),
        "scanner": {"version": "0.1.0"},
        "host": {"hostname": hostname, "machine_id": machine_id, "root": "/", "live": True,
                 "collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(collected_at or time.time())),
                 "virtualization": None},
        "facts": {
            "schema": "xcscan.facts/1",
            "collection": {"os": "ok", "packages": "ok", "processes": "ok"},
            "errors": [],
            "host": {"hostname": hostname, "machine_id": machine_id},
            "os": {"id": "kylin", "name": "Kylin Linux Advanced Server", "version_id": "V10",
                   "pretty_name": "Kylin Linux Advanced Server V10 (Sword)", "id_like": ["rhel"], "family": "rhel",
                   "kernel": "4.19.90-24.4.v2101.ky10.aarch64", "arch": "aarch64"},
            "packages": {"manager": "rpm", "items": [
                {"name": "pkg-%03d-%s" % (i, rng.choice(["lib", "tools", "devel", "common"])),
                 "version": "%d.%d.%d-%d.ky10" % (rng.randint(0, 9), rng.randint(0, 30), rng.randint(0, 99), rng.randint(1, 9)),
                 "arch": "aarch64"} for i in range(packages)]},
            "services": {"units": [{"name": "svc%02d.service" % i, "enabled": rng.random() < 0.5, "active": True,
                                    "source": "/usr/lib/systemd/system/svc%02d.service" % i} for i in range(40)],
                         "init_scripts": []},
        },
        "inventory": {"components": comps, "localization": {
            "rate": round(dom / (dom + forn), 4) if dom + forn else None, "domestic": dom, "foreign": forn,
            "unknown": sum(v["unknown"] for v in counts.values()), "by_category": counts}},
    }
    if results:
        res = []
        fail_rules = set(fail_rules or ())
        for rid, zh, en, cat, sev in RULES:
            status = "fail" if rid in fail_rules else rng.choice(["pass", "pass", "pass", "fail", "not_applicable", "manual"])
            res.append({"rule_id": rid, "title": {"zh": zh, "en": en}, "category": cat, "severity": sev,
                        "status": status, "refs": {"gbt22239": "8.1.4.1 a)"}, "expected": "<= 90",
                        "actual": "99999" if status == "fail" else "90",
                        "evidence": [{"kind": "file", "value": "PASS_MAX_DAYS 99999", "source": "/etc/login.defs"}],
                        "items": [], "remediation": {"zh": "修改配置", "en": "Fix the configuration"}, "waiver": None,
                        "reason": {"zh": "%s：实际 %s，应为 <= 90" % (rid, "99999" if status == "fail" else "90"),
                                   "en": "%s: actual %s, expected <= 90" % (rid, "99999" if status == "fail" else "90")}})
        tally = {s: sum(1 for r in res if r["status"] == s) for s in ("pass", "fail", "error", "not_applicable", "manual", "waived")}
        judged = tally["pass"] + tally["fail"]
        doc["results"] = res
        doc["summary"] = {"profile": profile, "counts": tally,
                          "score": round(100.0 * tally["pass"] / judged, 1) if judged else None,
                          "score_without_waivers": round(100.0 * tally["pass"] / judged, 1) if judged else None}
    return doc


def body_of(doc):
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


class Agent(object):
    """An enrolled host as the server sees it: Ed25519 key, host id, signed submissions."""

    def __init__(self, hostname, machine_id=None):
        self.hostname = hostname
        self.machine_id = machine_id
        self.key = Ed25519PrivateKey.generate()
        self.host_id = None
        self.org = None

    @property
    def public_key(self):
        return base64.b64encode(self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()

    def enroll_body(self, token):
        return {"token": token, "hostname": self.hostname, "machine_id": self.machine_id, "public_key": self.public_key}

    def enroll(self, client, token):
        resp = client.post("/api/v1/enroll", json=self.enroll_body(token))
        if resp.status_code == 201:
            self.host_id = resp.json()["host_id"]
            self.org = resp.json()["org"]
        return resp

    def headers(self, body, timestamp=None, host_id=None):
        ts = str(int(timestamp if timestamp is not None else time.time()))
        hid = host_id or self.host_id
        sig = self.key.sign(b"xcscan-report/1\n" + hid.encode() + b"\n" + ts.encode() + b"\n" + body)
        return {"X-Xcscan-Host": hid, "X-Xcscan-Timestamp": ts, "X-Xcscan-Signature": base64.b64encode(sig).decode(),
                "Content-Type": "application/json"}

    def submit(self, client, doc_or_body, timestamp=None, compress=False, headers=None):
        body = doc_or_body if isinstance(doc_or_body, bytes) else body_of(doc_or_body)
        h = self.headers(body, timestamp)
        data = body
        if compress:
            data = gzip.compress(body)
            h["Content-Encoding"] = "gzip"
        h.update(headers or {})
        return client.post("/api/v1/reports", content=data, headers=h)

    def report(self, **kw):
        kw.setdefault("machine_id", self.machine_id)
        return make_report(self.hostname, **kw)
