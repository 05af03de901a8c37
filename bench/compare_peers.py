#!/usr/bin/env python3
"""Compare xcscan's MLPS verdicts on this host with Lynis and OpenSCAP (SSG) for the checks all make.

Usage (as root, after ``apt-get install -y lynis openscap-scanner ssg-debian``)::

    python bench/compare_peers.py                 # runs Lynis (~1 min), OpenSCAP and xcscan
    python bench/compare_peers.py --lynis-dir D   # reuse lynis.log + lynis-report.dat copied to D
    python bench/compare_peers.py --json out.json

Prints a Markdown table: one row per comparable check with each tool's verdict, the evidence
xcscan collected and whether the three agree. OpenSCAP runs the Debian 11 SSG datastream with its
platform CPE patched to accept Debian 12 and the /.dockerenv container probe disabled (see
../shared/research/peers-perf.md), through a tailoring file that selects only the rules below.
"""
from __future__ import print_function

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

SSG = "/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml"
RULE_PREFIX = "xccdf_org.ssgproject.content_rule_"

# (check, xcscan rule ids, Lynis test ids, OpenSCAP rule ids, facts to quote as evidence)
COMPARISONS = [
    ("Password maximum age (login.defs)", ["mlps.ia.password-max-age"], ["AUTH-9286"],
     ["accounts_maximum_age_login_defs"], ["login_defs.PASS_MAX_DAYS"]),
    ("Password minimum age (login.defs)", ["mlps.ia.password-min-age"], ["AUTH-9286"],
     ["accounts_minimum_age_login_defs"], ["login_defs.PASS_MIN_DAYS"]),
    ("Password warning age (login.defs)", ["mlps.ia.password-warn-age"], [],
     ["accounts_password_warn_age_login_defs"], ["login_defs.PASS_WARN_AGE"]),
    ("Password minimum length", ["mlps.ia.password-min-length"], ["AUTH-9262"],
     ["accounts_password_minlen_login_defs"], ["pam.quality.module", "pam.quality.minlen", "login_defs.PASS_MIN_LEN"]),
    ("Password quality module (pwquality/cracklib)", ["mlps.ia.password-quality-module"], ["AUTH-9262"], [],
     ["pam.quality.module"]),
    ("Login failure lockout (faillock)", ["mlps.ia.login-lockout"], ["AUTH-9408"],
     ["accounts_passwords_pam_faillock_audit", "account_passwords_pam_faillock_audit"],
     ["pam.lockout.services", "pam.lockout.missing_services", "pam.modules_on_disk"]),
    ("SSH PermitRootLogin", ["mlps.ac.ssh-root-login"], ["SSH-7408"], ["sshd_disable_root_login"],
     ["sshd.installed"]),
    ("auditd installed / enabled / running", ["mlps.au.auditd-installed", "mlps.au.auditd-enabled", "mlps.au.auditd-running"],
     ["ACCT-9628"], ["package_audit_installed", "service_auditd_enabled"], ["audit.installed", "audit.service"]),
    ("Audit rules immutable (-e 2)", ["mlps.au.audit-immutable"], [], ["audit_rules_immutable"], ["audit.immutable"]),
    ("System logging daemon", ["mlps.au.syslog-enabled"], ["LOGG-2130"],
     ["package_rsyslog_installed", "service_rsyslog_enabled"],
     ["logging.daemon_installed", "logging.journald.persistent", "logging.journald.active"]),
    ("Remote log forwarding", ["mlps.au.remote-logging"], ["LOGG-2154"], ["rsyslog_remote_loghost"],
     ["logging.forwarding", "audit.remote"]),
    ("Idle shell timeout (TMOUT)", ["mlps.ia.shell-timeout"], ["SHLL-6220"], [], ["shell.tmout"]),
    ("Default umask", ["mlps.ac.default-umask", "mlps.ac.login-defs-umask"], ["AUTH-9328"],
     ["accounts_umask_etc_login_defs", "accounts_umask_etc_profile"], ["shell.umask.value", "login_defs.UMASK"]),
    ("/etc/passwd, shadow, group, gshadow modes", ["mlps.ac.account-files-perms", "mlps.ac.shadow-files-perms"],
     ["FILE-7524:/etc/passwd", "FILE-7524:/etc/group", "FILE-7524:/etc/shadow"], ["file_permissions_etc_passwd", "file_permissions_etc_shadow", "file_permissions_etc_group",
                     "file_permissions_etc_gshadow", "file_owner_etc_shadow"], []),
    ("cron directories and crontab modes", ["mlps.ac.cron-perms"],
     ["FILE-7524:/etc/cron.d", "FILE-7524:/etc/cron.daily", "FILE-7524:/etc/crontab"], [], []),
    ("No UID 0 except root", ["mlps.ac.no-extra-uid0"], ["AUTH-9204"], ["accounts_no_uid_except_zero"],
     ["accounts.uid0"]),
    ("Empty passwords in /etc/shadow", ["mlps.ia.no-empty-passwords"], ["AUTH-9283"],
     ["no_empty_passwords_etc_shadow"], ["accounts.empty_password"]),
    ("PAM accepts empty passwords (nullok)", ["mlps.ia.pam-no-nullok"], [], ["no_empty_passwords"], ["pam.nullok"]),
    ("Host firewall filters inbound traffic", ["mlps.ip.host-firewall"], ["FIRE-4590"],
     ["service_iptables_enabled", "service_ufw_enabled", "set_iptables_default_rule"],
     ["firewall.backends", "firewall.kernel_netfilter", "firewall.filtering"]),
    ("Time synchronisation", ["mlps.au.time-sync-enabled", "mlps.au.time-sync-running"], ["TIME-3104"],
     ["package_ntp_installed", "service_ntp_enabled", "package_chrony_installed", "service_chronyd_enabled"],
     ["time_sync.daemons"]),
    ("ASLR (kernel.randomize_va_space = 2)", ["mlps.ip.sysctl-aslr"], ["KRNL-6000:kernel.randomize_va_space"],
     ["sysctl_kernel_randomize_va_space"], ["sysctl.kernel.randomize_va_space"]),
    ("fs.suid_dumpable = 0", ["mlps.ri.suid-dumpable-off"], ["KRNL-6000:fs.suid_dumpable"], ["sysctl_fs_suid_dumpable"],
     ["sysctl.fs.suid_dumpable"]),
    ("Core dumps limited", ["mlps.ri.core-dumps-limited", "mlps.ri.coredump-storage-off"], ["KRNL-5820"],
     ["coredump_disable_storage"], ["coredump.hard_core_limit", "coredump.storage"]),
    ("Mandatory access control", ["mlps.ac.mandatory-access-control"], ["MACF-6208", "MACF-6232"], ["selinux_state"],
     ["mac.mode", "mac.apparmor.enabled"]),
]


def lookup(facts, path):
    node = facts
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return "<absent>"
        node = node[part]
    return node


# --------------------------------------------------------------------- Lynis
def run_lynis(workdir):
    start = time.time()
    subprocess.call(["lynis", "audit", "system", "--quick", "--no-colors"], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    for name in ("lynis.log", "lynis-report.dat"):
        shutil.copy(os.path.join("/var/log", name), workdir)
    return time.time() - start


def parse_lynis(directory):
    report, findings = {}, {}
    with open(os.path.join(directory, "lynis-report.dat"), errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if "=" not in line:
                continue
            key, value = line.split("=", 1)
            if key in ("warning[]", "suggestion[]"):
                test = value.split("|", 1)[0]
                findings.setdefault(test, []).append("%s: %s" % (key[:-2], "|".join(value.split("|")[1:3])))
            else:
                report[key] = value
    executed = set(report.get("tests_executed", "").split("|"))
    skipped = set(report.get("tests_skipped", "").split("|"))
    results = {}
    log = open(os.path.join(directory, "lynis.log"), errors="replace").read().splitlines()
    current = None
    details = {}
    for line in log:
        match = re.search(r"Performing test ID (\S+)", line)
        if match:
            current = match.group(1)
            continue
        if current:
            details.setdefault(current, []).append(line.split(" ", 2)[-1][:200])
    for test in executed | skipped:
        if test in skipped:
            verdict = "skipped"
        elif test in findings:
            verdict = "finding"
        else:
            verdict = "no finding"
        lines = details.get(test, [])
        results[test] = {"verdict": verdict, "findings": findings.get(test, []),
                         "log": [l for l in lines if re.match(r"(Result|Suggestion|Warning|Hardening|Outcome): ", l)][:4],
                         "lines": lines}
    return results, report


def lynis_verdict(lynis, spec):
    """Verdict of a Lynis test, or of one item inside it ("KRNL-6000:fs.suid_dumpable") read from its log lines."""
    test, _, needle = spec.partition(":")
    entry = lynis.get(test)
    if entry is None:
        return "n/a"
    if not needle or entry["verdict"] == "skipped":
        return entry["verdict"]
    lines = [l for l in entry["lines"] if needle + " " in l + " " or needle + "," in l]
    if not lines:
        return "not checked"
    if any(re.search(r"different value|not matching|could be more strict", l) for l in lines):
        return "finding"
    return "no finding"


# --------------------------------------------------------------------- OpenSCAP
def patched_datastream(workdir):
    with open(SSG) as fh:
        text = fh.read()
    text = text.replace("^11.[0-9]+$", "^1[12].[0-9]+$")
    text = text.replace('<unix:filepath datatype="string">/.dockerenv</unix:filepath>',
                        '<unix:filepath datatype="string">/.dockerenv-ignored-by-peer-bench</unix:filepath>')
    path = os.path.join(workdir, "ssg-debian11-on12-machine-ds.xml")
    with open(path, "w") as fh:
        fh.write(text)
    return path


def tailoring(workdir, rules):
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<xccdf:Tailoring xmlns:xccdf="http://checklists.nist.gov/xccdf/1.2" id="xccdf_xcscan_tailoring_peers">',
             '<xccdf:version time="2026-11-24T00:00:00">1</xccdf:version>',
             '<xccdf:Profile id="xccdf_xcscan_profile_peers"><xccdf:title>xcscan peer comparison</xccdf:title>']
    for rule in rules:
        lines.append('<xccdf:select idref="%s%s" selected="true"/>' % (RULE_PREFIX, rule))
    lines.append("</xccdf:Profile></xccdf:Tailoring>")
    path = os.path.join(workdir, "tailoring.xml")
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    return path


def run_oscap(workdir, rules):
    ds = patched_datastream(workdir)
    tail = tailoring(workdir, rules)
    results = os.path.join(workdir, "oscap-results.xml")
    start = time.time()
    subprocess.call(["oscap", "xccdf", "eval", "--tailoring-file", tail, "--profile", "xccdf_xcscan_profile_peers",
                     "--results", results, ds], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    took = time.time() - start
    out = {}
    ns = {"x": "http://checklists.nist.gov/xccdf/1.2"}
    for rr in ET.parse(results).getroot().iter("{http://checklists.nist.gov/xccdf/1.2}rule-result"):
        rid = rr.get("idref")[len(RULE_PREFIX):]
        out[rid] = rr.find("x:result", ns).text
    return out, took


# --------------------------------------------------------------------- xcscan
def run_xcscan():
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from scanner.pipeline import scan_report
    start = time.time()
    report = scan_report("/", profile="all", live=True)
    took = time.time() - start
    return dict((r["rule_id"], r) for r in report["results"]), report["facts"], took


def agreement(x, lynis, oscap):
    """Crude three-way reading: does each peer point the same way as xcscan (finding vs none)?"""
    x_bad = any(s in ("fail", "error") for s in x)
    x_na = all(s == "not_applicable" for s in x)
    notes = []
    for name, verdicts, bad_words, na_words in (("Lynis", lynis, ("finding",), ("skipped", "not checked")),
                                                ("OpenSCAP", oscap, ("fail", "error"), ("notapplicable", "notchecked"))):
        if not verdicts:
            continue
        if all(v in na_words or v == "n/a" for v in verdicts):
            notes.append("%s: not checked" % name)
            continue
        peer_bad = any(v in bad_words for v in verdicts)
        if x_na:
            notes.append("%s: %s where xcscan says not applicable" % (name, "finding" if peer_bad else "pass"))
        elif peer_bad != x_bad:
            notes.append("%s DISAGREES" % name)
        else:
            notes.append("%s agrees" % name)
    return "; ".join(notes) or "only xcscan checks it"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lynis-dir", help="directory holding lynis.log and lynis-report.dat from an earlier run")
    ap.add_argument("--json", help="also write the comparison as JSON here")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="xcscan-peers-")
    lynis_took = None
    if args.lynis_dir:
        lynis_dir = args.lynis_dir
    else:
        lynis_took = run_lynis(workdir)
        lynis_dir = workdir
    lynis, lynis_report = parse_lynis(lynis_dir)
    wanted = sorted(set(r for c in COMPARISONS for r in c[3]))
    oscap, oscap_took = run_oscap(workdir, wanted)
    results, facts, x_took = run_xcscan()
    rows = []
    for check, xids, lids, oids, evidence in COMPARISONS:
        x = [results[r]["status"] if r in results else "missing" for r in xids]
        lv = [lynis_verdict(lynis, t) for t in lids]
        ov = [oscap.get(o, "n/a") for o in oids]
        ev = dict((p, lookup(facts, p)) for p in evidence)
        rows.append({"check": check, "xcscan": dict(zip(xids, x)), "lynis": dict(zip(lids, lv)),
                     "lynis_detail": dict((t, dict((k, v) for k, v in lynis.get(t.split(":")[0], {}).items()
                                                   if k != "lines")) for t in lids), "oscap": dict(zip(oids, ov)),
                     "evidence": ev, "agreement": agreement(x, lv, ov)})
    print("| check | xcscan | Lynis %s | OpenSCAP (SSG 0.1.65, debian11 content patched for 12) | reading |" %
          lynis_report.get("lynis_version", ""))
    print("|---|---|---|---|---|")
    for row in rows:
        print("| %s | %s | %s | %s | %s |" % (
            row["check"], ", ".join("%s %s" % (k.split(".", 2)[2], v) for k, v in row["xcscan"].items()),
            ", ".join("%s %s" % kv for kv in row["lynis"].items()) or "-",
            ", ".join("%s %s" % kv for kv in row["oscap"].items()) or "-", row["agreement"]))
    print()
    print("Evidence (xcscan facts):")
    for row in rows:
        print("- %s: %s" % (row["check"], json.dumps(row["evidence"], ensure_ascii=False, default=str)[:400]))
    print()
    print("Time: xcscan scan --profile all %.2f s; OpenSCAP %d rules %.1f s; Lynis %s" % (
        x_took, sum(1 for v in oscap.values() if v != "notselected"), oscap_took, ("%.1f s" % lynis_took) if lynis_took else "(reused %s)" % lynis_dir))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, ensure_ascii=False, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
