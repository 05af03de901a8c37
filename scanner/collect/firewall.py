"""Host firewall (facts.firewall, shape in the shared contracts), judged by real rules.

Backends: firewalld (default zone and its target/services/sources), nftables
(live ``nft -j list ruleset``; offline /etc/nftables.conf or
/etc/sysconfig/nftables.conf), iptables (live ``iptables-save``; offline
/etc/sysconfig/iptables or /etc/iptables/rules.v4) and ufw (/etc/ufw).

``filtering`` is true only when an active (live) or enabled (offline) backend
restricts inbound traffic: an input policy of drop/reject, or at least one
DROP/REJECT rule on the input path. The kernel merely exposing netfilter
(/proc/net/ip_tables_names) is recorded as ``kernel_netfilter`` and proves
nothing -- an empty table filters nothing.
"""
from __future__ import absolute_import

import json
import re

from scanner.collect.baseline_util import find_binary, parse_key_value, running_names, unit_enabled

NAME = "firewall"
LIVE_ONLY = False


def backend(name, active, enabled, rule_count, policy, restricting, source, ssh_restricted=False):
    return {"name": name, "active": active, "enabled": enabled, "rule_count": rule_count,
            "input_policy": policy, "restricting": bool(restricting), "source": source,
            "ssh_source_restricted": bool(ssh_restricted)}


# -- iptables -------------------------------------------------------------
def parse_iptables_save(text):
    policy, rules, restricting, ssh = None, 0, False, False
    table = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            table = line[1:]
            continue
        if table != "filter":
            continue
        match = re.match(r"^:INPUT\s+(\w+)", line)
        if match:
            policy = match.group(1).lower()
            continue
        if line.startswith("-A INPUT") or re.match(r"^-A (ufw-user-input|INPUT_\w+|IN_\w+)", line):
            rules += 1
            if re.search(r"-j\s+(DROP|REJECT)", line):
                restricting = True
            if re.search(r"\s-s\s+\S+", line) and re.search(r"--dport\s+22\b", line) and "-j ACCEPT" in line:
                ssh = True
    if policy in ("drop", "reject"):
        restricting = True
    return policy, rules, restricting, ssh


def iptables(ctx):
    fs = ctx.fs
    binary = find_binary(fs, "iptables-save") or find_binary(fs, "iptables-legacy-save")
    enabled = None
    for unit in ("iptables.service", "netfilter-persistent.service"):
        state = unit_enabled(fs, unit)
        if state:
            enabled = True
        elif state is False and enabled is None:
            enabled = False
    if ctx.live:
        if binary is None:
            return None
        text = ctx.run([binary], report=False)
        if text is None:
            ctx.error(binary, "could not list the loaded iptables rules (run as root)")
            return backend("iptables", None, enabled, None, None, False, binary)
        policy, count, restricting, ssh = parse_iptables_save(text)
        active = count > 0 or policy in ("drop", "reject")
        return backend("iptables", active, enabled, count, policy, restricting, "iptables-save", ssh)
    for path in ("/etc/sysconfig/iptables", "/etc/iptables/rules.v4"):
        text = fs.read_text(path, report=False)
        if text is not None:
            policy, count, restricting, ssh = parse_iptables_save(text)
            return backend("iptables", None, enabled, count, policy, restricting and bool(enabled), path, ssh)
    return None


# -- nftables -------------------------------------------------------------
def parse_nft_json(text):
    data = json.loads(text)
    input_chains, policy, rules, restricting, ssh = set(), None, 0, False, False
    for item in data.get("nftables", []):
        chain = item.get("chain")
        if chain and chain.get("hook") == "input" and chain.get("type") == "filter":
            input_chains.add((chain.get("family"), chain.get("table"), chain.get("name")))
            if chain.get("policy") in ("drop", "reject"):
                policy = chain.get("policy")
            elif policy is None:
                policy = chain.get("policy")
    for item in data.get("nftables", []):
        rule = item.get("rule")
        if rule and (rule.get("family"), rule.get("table"), rule.get("chain")) in input_chains:
            rules += 1
            dump = json.dumps(rule.get("expr", []))
            if '"drop"' in dump or '"reject"' in dump:
                restricting = True
            if '"saddr"' in dump and '"dport"' in dump and re.search(r'"right": 22\b', dump):
                ssh = True
    if policy in ("drop", "reject"):
        restricting = True
    return policy, rules, restricting, ssh


def nft_text_input_chains(text):
    """Split a ruleset file into input-hook chains and parse them."""
    chains = re.findall(r"chain\s+\S+\s*\{(.*?)\n\s*\}", text, re.S)
    policy, rules, restricting, ssh = None, 0, False, False
    for body in chains:
        if not re.search(r"type\s+filter\s+hook\s+input\b", body):
            continue
        match = re.search(r"policy\s+(\w+)", body)
        if match:
            policy = match.group(1) if policy not in ("drop", "reject") else policy
        for raw in body.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line or line.startswith("type ") or line.startswith("policy "):
                continue
            rules += 1
            if re.search(r"\b(drop|reject)\b", line):
                restricting = True
            if "saddr" in line and re.search(r"dport\s+(\{[^}]*\b22\b|22\b)", line) and "accept" in line:
                ssh = True
    if policy in ("drop", "reject"):
        restricting = True
    return policy, rules, restricting, ssh


def nftables(ctx):
    fs = ctx.fs
    binary = find_binary(fs, "nft")
    enabled = unit_enabled(fs, "nftables.service")
    if ctx.live:
        if binary is None:
            return None
        text = ctx.run([binary, "-j", "list", "ruleset"], report=False)
        if text is None:
            ctx.error(binary, "could not list the loaded nftables ruleset (run as root)")
            return backend("nftables", None, enabled, None, None, False, "nft -j list ruleset")
        try:
            policy, count, restricting, ssh = parse_nft_json(text) if text.strip() else (None, 0, False, False)
        except (ValueError, AttributeError, TypeError) as exc:
            ctx.error("nft -j list ruleset", "unparseable JSON: %s" % exc)
            return backend("nftables", None, enabled, None, None, False, "nft -j list ruleset")
        active = count > 0 or policy in ("drop", "reject")
        return backend("nftables", active, enabled, count, policy, restricting, "nft -j list ruleset", ssh)
    for path in ("/etc/sysconfig/nftables.conf", "/etc/nftables.conf"):
        text = fs.read_text(path, report=False)
        if text is not None:
            included = []
            for inc in re.findall(r'^\s*include\s+"([^"]+)"', text, re.M):
                if inc.startswith("/"):
                    for p in (fs.glob(inc) if "*" in inc else [inc]):
                        included.append(fs.read_text(p, report=False) or "")
            policy, count, restricting, ssh = nft_text_input_chains("\n".join([text] + included))
            return backend("nftables", None, enabled, count, policy, restricting and bool(enabled), path, ssh)
    return None


# -- firewalld --------------------------------------------------------------
def firewalld(ctx):
    fs = ctx.fs
    if find_binary(fs, "firewalld") is None:
        return None
    enabled = unit_enabled(fs, "firewalld.service")
    active = None
    names = running_names(ctx)
    if names is not None:
        active = "firewalld" in names
    conf, _ = parse_key_value(fs, "/etc/firewalld/firewalld.conf")
    zone = (conf or {}).get("defaultzone") or "public"
    text = None
    for base in ("/etc/firewalld/zones", "/usr/lib/firewalld/zones"):
        text = fs.read_text("%s/%s.xml" % (base, zone), report=False)
        if text is not None:
            break
    target = "default"
    services = ports = rich = sources = 0
    ssh = False
    if text is not None:
        match = re.search(r'<zone[^>]*\starget="([^"]+)"', text)
        target = match.group(1) if match else "default"
        services = len(re.findall(r"<service\s", text))
        ports = len(re.findall(r"<port\s", text))
        rich = len(re.findall(r"<rule[\s>]", text))
        sources = len(re.findall(r"<source\s", text))
        ssh_open = re.search(r'<service\s+name="ssh"', text)
        ssh = bool((sources and ssh_open) or re.search(r'<rule[^>]*>\s*<source address=[^>]*>\s*<service name="ssh"', text))
    policy = "accept" if target.upper() == "ACCEPT" or zone == "trusted" else "drop"
    restricting = policy == "drop"
    on = active if active is not None else enabled
    result = backend("firewalld", active, enabled, services + ports + rich, policy, restricting and bool(on),
                     "default zone %s" % zone, ssh)
    result["default_zone"] = zone
    return result


# -- ufw ----------------------------------------------------------------------
def ufw(ctx):
    fs = ctx.fs
    conf, _ = parse_key_value(fs, "/etc/ufw/ufw.conf")
    if conf is None:
        return None
    on = conf.get("enabled", "no").lower() == "yes"
    defaults, _ = parse_key_value(fs, "/etc/default/ufw")
    policy = ((defaults or {}).get("default_input_policy") or "DROP").lower()
    text = fs.read_text("/etc/ufw/user.rules", report=False) or ""
    rules = len(re.findall(r"^-A ufw-user-input", text, re.M))
    ssh = any(re.search(r"\s-s\s+\S+", line) and re.search(r"--dport 22\b", line) and "-j ACCEPT" in line
              for line in text.splitlines() if line.startswith("-A ufw-user-input"))
    active = None
    if ctx.live:
        active = on  # ufw.conf ENABLED is applied at boot by ufw.service
    result = backend("ufw", active, on, rules, "drop" if policy in ("drop", "reject") else "accept",
                     on and (policy in ("drop", "reject") or "-j DROP" in text or "-j REJECT" in text),
                     "/etc/ufw/ufw.conf", ssh)
    return result


def collect(ctx):
    backends = []
    for probe in (firewalld, nftables, iptables, ufw):
        try:
            found = probe(ctx)
        except Exception as exc:  # one broken backend must not hide the others
            ctx.error(None, "%s probe failed: %s" % (probe.__name__, exc))
            found = None
        if found is not None:
            backends.append(found)
    kernel = None
    if ctx.live:
        kernel = ctx.fs.exists("/proc/net/ip_tables_names") or ctx.fs.exists("/proc/net/netfilter")
    actives = [b["active"] for b in backends]
    if ctx.live:
        active = any(a for a in actives) if all(a is not None for a in actives) or any(actives) else None
        filtering = any(b["restricting"] and b["active"] for b in backends)
        if not filtering and any(b["active"] is None for b in backends):
            filtering = None
    else:
        active = None
        filtering = any(b["restricting"] and b["enabled"] for b in backends)
    return {"active": active, "backends": backends, "filtering": filtering, "kernel_netfilter": kernel,
            "ssh_source_restricted": any(b["ssh_source_restricted"] and (b["active"] or b["enabled"]) for b in backends)}
