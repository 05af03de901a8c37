"""Fixture roots for the baseline tests: copied to a temporary directory with the modes and
owners real hosts have (git keeps neither), then scanned offline."""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, "fixtures", "baseline")
ROOTS = ("rhel-hardened", "rhel-default", "debian-hardened", "debian-default")


def _ids(root, table):
    ids = {}
    path = os.path.join(root, "etc", table)
    with open(path) as fh:
        for line in fh:
            parts = line.split(":")
            if len(parts) > 2 and parts[2].isdigit():
                ids.setdefault(parts[0], int(parts[2]))
    return ids


def materialise(name, dest):
    """Copy fixture root ``name`` to ``dest`` and apply its .modes file; return the root path."""
    root = os.path.join(str(dest), name)
    shutil.copytree(os.path.join(BASE, name), root, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in filenames:
            if entry == ".keep":
                os.unlink(os.path.join(dirpath, entry))
    users, groups = _ids(root, "passwd"), _ids(root, "group")
    with open(os.path.join(BASE, name + ".modes")) as fh:
        for line in fh:
            if not line.strip() or line.startswith("#"):
                continue
            path, mode, owner, group = line.split()
            target = os.path.join(root, path.lstrip("/"))
            if os.geteuid() == 0:
                os.chown(target, users[owner], groups[group])
            os.chmod(target, int(mode, 8))  # after chown, which clears SUID/SGID bits
    return root


def scan_facts(root):
    from scanner.collect import collect_facts
    from scanner.context import Context
    ctx = Context(root=root, live=False)
    return collect_facts(ctx)
