"""Agentless scans over SSH (`xcscan scan --ssh [USER@]HOST[:PORT]`).

One OpenSSH session per host (the system's `ssh` client: host keys, agents, jump hosts and
ssh_config all work as the operator configured them; xcscan has no SSH implementation of its own):
the offline bundle (one .pyz file) is streamed over the session's standard input into a private
directory made by `mktemp -d` on the target, run there with the target's system Python 3.7+
(optionally through `sudo -n`), its JSON report streamed back on standard output, and the directory
removed whatever happens (a shell `trap` on exit). Host keys are checked against known_hosts
(StrictHostKeyChecking=yes, BatchMode=yes): an unknown or changed key is refused, never trusted blindly.

Standard library only, Python 3.7 compatible.
"""
from __future__ import absolute_import

import getpass
import json
import os
import re
import socket
import subprocess
import time

from scanner.errors import XcscanError

DEFAULT_TIMEOUT = 600.0
CONNECT_TIMEOUT = 15
NO_PYTHON = 97
MAX_REPORT = 256 * 1024 * 1024
TARGET_RE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]{0,63})@)?"
                       r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})(?::(?P<port>[0-9]{1,5}))?$")

# The remote side, POSIX sh: $1 is "sudo" or "-", the rest are the scan's arguments; the bundle arrives on stdin.
REMOTE_SCRIPT = r'''
set -u
d=$(mktemp -d "${TMPDIR:-/tmp}/xcscan.XXXXXXXX") || exit 98
S=""
[ "$1" = sudo ] && S="sudo -n"
shift
cleanup() { $S rm -rf "$d" 2>/dev/null || rm -rf "$d"; }
trap cleanup EXIT
trap 'exit 129' HUP INT TERM
cat > "$d/xcscan-agent.pyz" || exit 98
PY=""
for c in python3 python3.13 python3.12 python3.11 python3.10 python3.9 python3.8 python3.7 \
         /usr/libexec/platform-python; do
  p=$(command -v "$c" 2>/dev/null) || continue
  if "$p" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 7) else 1)' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then echo "xcscan-remote: no Python 3.7 or newer on this host" >&2; exit 97; fi
$S env XCSCAN_BUNDLE_CACHE="$d/cache" LANG=C "$PY" "$d/xcscan-agent.pyz" "$@"
'''


class RemoteError(XcscanError):
    """A remote scan failed; the message says which host and why."""


def parse_target(text):
    """(user or None, host, port or None) from USER@HOST[:PORT]; [v6]:port for IPv6."""
    m = TARGET_RE.match((text or "").strip())
    if not m:
        raise RemoteError("not a USER@HOST[:PORT] target: %r" % text)
    port = int(m.group("port")) if m.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise RemoteError("port out of range in %r" % text)
    return m.group("user"), m.group("host").strip("[]"), port


def read_target_list(path):
    """One target per line; '#' comments and blank lines ignored."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (IOError, OSError) as exc:
        raise RemoteError("cannot read the host list: %s" % (exc.strerror or exc), path=path)
    out = []
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            parse_target(line)
        except RemoteError as exc:
            raise RemoteError(exc.message, path="%s:%d" % (path, n))
        out.append(line)
    if not out:
        raise RemoteError("the host list names no host", path=path)
    return out


def find_bundle(path=None):
    path = path or os.environ.get("XCSCAN_BUNDLE")
    if not path:
        raise RemoteError("an agentless scan copies the offline bundle to the target; none was given",
                          hint="build it with `python3 agents/bundle/build.py -o xcscan-agent.pyz` and pass "
                               "--bundle xcscan-agent.pyz (or set XCSCAN_BUNDLE)")
    if not os.path.isfile(path):
        raise RemoteError("no such bundle file", path=path)
    return path


def ssh_argv(target, known_hosts=None, identity=None, extra=()):
    user, host, port = parse_target(target)
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=%d" % CONNECT_TIMEOUT, "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR", "-T"]
    if known_hosts:
        argv += ["-o", "UserKnownHostsFile=%s" % known_hosts, "-o", "GlobalKnownHostsFile=/dev/null"]
    if identity:
        argv += ["-i", identity, "-o", "IdentitiesOnly=yes"]
    if port:
        argv += ["-p", str(port)]
    for opt in extra:
        argv += ["-o", opt]
    argv.append("%s@%s" % (user, host) if user else host)
    return argv


def _quote(arg):
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def remote_scan(target, bundle, scan_args, sudo=False, known_hosts=None, identity=None, ssh_options=(),
                timeout=DEFAULT_TIMEOUT):
    """Run the bundle's `scan --format json` on ``target``; the parsed report, with ``collection`` set."""
    argv = ssh_argv(target, known_hosts, identity, ssh_options)
    args = ["sudo" if sudo else "-", "scan", "--format", "json", "--quiet"] + list(scan_args)
    remote = "sh -c %s xcscan %s" % (_quote(REMOTE_SCRIPT), " ".join(_quote(a) for a in args))
    started = time.time()
    with open(bundle, "rb") as fh:
        payload = fh.read()
    try:
        proc = subprocess.Popen(argv + [remote], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as exc:
        raise RemoteError("cannot run the ssh client: %s" % (exc.strerror or exc),
                          hint="install OpenSSH's client (openssh-clients / openssh-client)")
    try:
        out, err = proc.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RemoteError("%s: no report within %d s" % (target, timeout), hint="raise --ssh-timeout")
    err_text = err.decode("utf-8", "replace").strip()
    if proc.returncode == 255:
        why = err_text.splitlines()[-1] if err_text else "ssh failed"
        hint = None
        if "Host key verification failed" in err_text or "IDENTIFICATION HAS CHANGED" in err_text:
            hint = ("the host key is not in known_hosts or has changed; check its fingerprint out of band, then "
                    "add it to known_hosts (or pass --known-hosts FILE)")
        raise RemoteError("%s: %s" % (target, why), hint=hint)
    if proc.returncode == NO_PYTHON:
        raise RemoteError("%s has no Python 3.7 or newer" % target,
                          hint="install python3 there, or scan its disk image with --root")
    if sudo and "sudo" in err_text and ("password is required" in err_text or "not allowed" in err_text
                                        or "may not run" in err_text):
        raise RemoteError("%s: sudo -n refused: %s" % (target, err_text.splitlines()[-1]),
                          hint="allow the scanning user to run python3 without a password, or drop --ssh-sudo")
    if len(out) > MAX_REPORT:
        raise RemoteError("%s: the report is larger than %d bytes" % (target, MAX_REPORT))
    try:
        report = json.loads(out.decode("utf-8"))
    except ValueError:
        last = err_text.splitlines()[-1] if err_text else "exit status %d" % proc.returncode
        raise RemoteError("%s: the remote scan gave no report: %s" % (target, last))
    if not isinstance(report, dict) or report.get("schema") != "xcscan.report/1":
        raise RemoteError("%s: the remote scan answered something that is not an xcscan report" % target)
    report["collection"] = {
        "method": "ssh",
        "target": target,
        "sudo": bool(sudo),
        "by": "%s@%s" % (_local_user(), socket.gethostname()),
        "exit_status": proc.returncode,
        "seconds": round(time.time() - started, 2),
    }
    return report


def _local_user():
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no name for this uid
        return str(os.getuid())


def scan_many(targets, run_one, jobs=4):
    """``run_one(target)`` for every target, at most ``jobs`` at a time (each bounded by its own
    timeout); [(target, report or None, error text or None)] in the input order."""
    from concurrent.futures import ThreadPoolExecutor
    jobs = max(1, min(int(jobs), 64))

    def task(target):
        try:
            return target, run_one(target), None
        except XcscanError as exc:
            return target, None, str(exc)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(task, targets))
