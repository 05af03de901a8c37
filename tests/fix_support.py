"""Helpers for the remediation tests: snapshots of a root, running the generated shell script,
rescanning one rule."""
import datetime
import os
import stat
import subprocess

NOW = datetime.datetime(2024, 1, 15)

# Rules whose fixture roots all pass: a weakened root (the mutation is what real hosts carry).
WEAKENED = {
    "mlps.ia.password-warn-age": ("rhel-hardened", [("sub", "/etc/login.defs", "PASS_WARN_AGE", "PASS_WARN_AGE 3\n#")]),
    "mlps.ip.sysctl-aslr": ("rhel-default", [("append", "/etc/sysctl.conf", "kernel.randomize_va_space=0\n")]),
    "mlps.ip.sysctl-icmp-broadcasts": ("debian-default", [
        ("write", "/etc/sysctl.d/60-local.conf", "net.ipv4.icmp_echo_ignore_broadcasts = 0\n")]),
    "mlps.ip.sysctl-source-route": ("debian-default", [
        ("write", "/etc/sysctl.d/10-router.conf", "-net.ipv4.conf.all.accept_source_route=1\n")]),
    "mlps.ip.sysctl-syncookies": ("rhel-default", [("append", "/etc/sysctl.conf", "net.ipv4.tcp_syncookies = 0\n")]),
    "mlps.ri.suid-dumpable-off": ("debian-default", [("write", "/etc/sysctl.d/50-dump.conf", "fs.suid_dumpable = 2\n")]),
    "mlps.ip.sysctl-ip-forward": ("rhel-default", [("write", "/etc/sysctl.d/90-router.conf", "net.ipv4.ip_forward = 1\n")]),
    "mlps.ia.ssh-no-empty-passwords": ("rhel-default", [
        ("append", "/etc/ssh/sshd_config.d/50-redhat.conf", "PermitEmptyPasswords yes\n")]),
    "mlps.ip.ssh-no-host-based-auth": ("rhel-hardened", [
        ("sub", "/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf",
         "HostbasedAuthentication yes\nInclude /etc/ssh/sshd_config.d/*.conf")]),
    "mlps.ip.ssh-no-user-environment": ("rhel-default", [
        ("append", "/etc/ssh/sshd_config.d/50-redhat.conf", "Match Group admins\n    PermitUserEnvironment no\n"),
        ("sub", "/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf",
         "Include /etc/ssh/sshd_config.d/*.conf\npermituserenvironment=yes")]),
    "mlps.au.sshd-loglevel": ("rhel-default", [("sub", "/etc/ssh/sshd_config.d/50-redhat.conf", "SyslogFacility AUTHPRIV",
                                                "SyslogFacility AUTHPRIV\nLogLevel QUIET")]),
    "mlps.ac.sshd-config-perms": ("rhel-default", [("chmod", "/etc/ssh/sshd_config", 0o644)]),
    "mlps.ac.account-files-perms": ("debian-default", [("chmod", "/etc/passwd", 0o666)]),
    "mlps.ac.shadow-files-perms": ("rhel-default", [("chmod", "/etc/gshadow", 0o644)]),
    "mlps.ac.sudoers-perms": ("rhel-default", [("chmod", "/etc/sudoers", 0o640)]),
    "mlps.ac.ssh-host-key-perms": ("rhel-default", [("chmod", "/etc/ssh/ssh_host_ed25519_key", 0o644)]),
    "mlps.au.auditd-enabled": ("rhel-default", [
        ("unlink", "/etc/systemd/system/multi-user.target.wants/auditd.service")]),
    "mlps.au.audit-config-perms": ("rhel-default", [("chmod", "/etc/audit/auditd.conf", 0o664),
                                                    ("chmod", "/etc/audit", 0o775)]),
    "mlps.au.audit-log-perms": ("rhel-default", [("chmod", "/var/log/audit", 0o755),
                                                 ("chmod", "/var/log/audit/audit.log", 0o644)]),
    "mlps.au.audit-disk-full-action": ("rhel-default", [
        ("sub", "/etc/audit/auditd.conf", "disk_full_action = SUSPEND", "disk_full_action = IGNORE"),
        ("sub", "/etc/audit/auditd.conf", "admin_space_left_action = SUSPEND", "admin_space_left_action = ignore")]),
    "mlps.ri.coredump-storage-off": ("rhel-default", [
        ("write", "/etc/sysctl.d/50-coredump.conf",
         "kernel.core_pattern=|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\n"),
        ("write", "/etc/systemd/coredump.conf", "[Coredump]\n#Storage=external\nStorage=external\n")]),
}


def snapshot(root):
    """{relative path: (kind, bytes or link target, mode, uid, gid)} of everything under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path), None, st.st_uid, st.st_gid)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", None, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            else:
                with open(path, "rb") as fh:
                    out[rel] = ("file", fh.read(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def differences(a, b):
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def status_of(root, rule_id, profile="all"):
    from scanner.pipeline import scan_report
    report = scan_report(root, profile=profile, live=False, now=NOW)
    for res in report["results"]:
        if res["rule_id"] == rule_id:
            return res["status"]
    return None


def run_script(script_text, root, backup, tmp_path):
    path = os.path.join(str(tmp_path), "fix-%d.sh" % len(os.listdir(str(tmp_path))))
    with open(path, "w") as fh:
        fh.write(script_text)
    env = dict(os.environ, XCSCAN_ROOT=root, XCSCAN_BACKUP=backup)
    proc = subprocess.run(["/bin/sh", path], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)
    return proc


def mutate(root, mutations):
    """Make a fixture root weaker: ('append'|'write', path, text), ('chmod', path, mode), ('unlink', path),
    ('sub', path, old, new)."""
    for m in mutations:
        target = os.path.join(root, m[1].lstrip("/"))
        if m[0] in ("append", "write"):
            if not os.path.isdir(os.path.dirname(target)):
                os.makedirs(os.path.dirname(target))
            with open(target, "a" if m[0] == "append" else "w") as fh:
                fh.write(m[2])
        elif m[0] == "chmod":
            os.chmod(target, m[2])
        elif m[0] == "unlink":
            os.unlink(target)
        elif m[0] == "sub":
            with open(target) as fh:
                text = fh.read()
            assert m[2] in text, "%s not in %s" % (m[2], m[1])
            with open(target, "w") as fh:
                fh.write(text.replace(m[2], m[3]))


# The userland a generated script needs (besides the live-only sysctl, systemctl, sshd, augenrules).
SCRIPT_TOOLS = ("sh", "awk", "stat", "cp", "mv", "rm", "mkdir", "chmod", "chown", "cmp", "readlink", "dirname",
                "basename", "date", "grep", "ln", "cat")


def _install_tools(root):
    """This machine's sh, awk and coreutils (and the libraries ldd names) copied into ``root``'s /bin and
    library directories, which the fixture roots do not have; returns what was created (to remove)."""
    import re
    import shutil
    created, files = [], {}
    for tool in SCRIPT_TOOLS:
        host = os.path.realpath(shutil.which(tool))
        files["/bin/" + tool] = host
        out = subprocess.run(["ldd", host], stdout=subprocess.PIPE, universal_newlines=True).stdout
        for lib in re.findall(r"(?:=>\s*)?(/\S+)\s+\(0x", out):
            files[lib] = os.path.realpath(lib)
    for path, host in sorted(files.items()):
        target = root
        for part in path.strip("/").split("/")[:-1]:
            target = os.path.join(target, part)
            assert not os.path.islink(target), "%s: a symlink in the fixture root" % target
            if not os.path.isdir(target):
                os.mkdir(target)
                created.append(target)
        target = os.path.join(target, os.path.basename(path))
        if os.path.lexists(target):
            continue
        try:
            os.link(host, target)
        except OSError:
            shutil.copy2(host, target)
        created.append(target)
    return created


def run_script_in_chroot(script_text, root, backup="/.xcscan-test-backup"):
    """Run the script as the target's own /bin/sh would: inside a chroot of ``root`` (no XCSCAN_ROOT,
    no /proc), with backups under ``backup`` inside it. The tools put there are removed again."""
    import shutil
    created = _install_tools(root)
    path = os.path.join(root, ".xcscan-test-fix.sh")
    try:
        with open(path, "w") as fh:
            fh.write(script_text)
        libdirs = sorted(set(os.path.dirname(p[len(root):]) for p in created
                             if os.path.isfile(p) and not p.startswith(os.path.join(root, "bin/"))))
        env = {"PATH": "/bin", "LD_LIBRARY_PATH": ":".join(libdirs), "XCSCAN_BACKUP": backup, "LANG": "C"}
        return subprocess.run([shutil.which("chroot"), root, "/bin/sh", "/.xcscan-test-fix.sh"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    finally:
        os.unlink(path)
        for p in reversed(created):
            if os.path.isdir(p) and not os.path.islink(p):
                os.rmdir(p)
            else:
                os.unlink(p)
