"""Boot loader protection: is GRUB's menu editing / command line protected by a password?

GRUB 2 asks for a password when ``set superusers`` and a ``password`` or
``password_pbkdf2`` line are present in grub.cfg (or in the /etc/grub.d
templates it is generated from), or when RHEL's ``grub2-setpassword`` wrote
GRUB2_PASSWORD to user.cfg next to grub.cfg. ``password`` is null when no GRUB
configuration exists (a container or another boot loader): unknown, not absent.
"""
from __future__ import absolute_import

import re

from scanner.collect.baseline_util import where

NAME = "bootloader"
LIVE_ONLY = False

CONFIGS = ("/boot/grub2/grub.cfg", "/boot/grub/grub.cfg", "/boot/efi/EFI/redhat/grub.cfg",
           "/boot/efi/EFI/centos/grub.cfg", "/boot/efi/EFI/rocky/grub.cfg", "/boot/efi/EFI/openEuler/grub.cfg",
           "/boot/efi/EFI/kylin/grub.cfg", "/boot/efi/EFI/debian/grub.cfg")
USER_CFG = ("/boot/grub2/user.cfg", "/boot/efi/EFI/redhat/user.cfg")


def scan(text, path):
    """({superuser name: location}, {user with a password: location}) of one GRUB script."""
    superusers, passwords = {}, {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith("#"):
            continue
        m = re.match(r"^set\s+superusers\s*=\s*(.*)$", line)
        if m:
            # GRUB manual "superusers": names separated by spaces, commas, semicolons, pipes or ampersands
            value = m.group(1).strip().strip("\"'")
            superusers = dict((name, where(path, number)) for name in re.split(r"[\s,;|&]+", value) if name)
            continue
        m = re.match(r"^password(_pbkdf2)?\s+(\S+)\s+(\S+)", line)
        if m and "GRUB2_PASSWORD" not in line:
            # RHEL's 01_users block refers to ${GRUB2_PASSWORD}: it only counts when user.cfg sets it
            passwords[m.group(2).strip("\"'")] = where(path, number)
    return superusers, passwords


def collect(ctx):
    fs = ctx.fs
    configs = [p for p in CONFIGS if fs.isfile(p)]
    if not configs:
        return {"loader": None, "config": None, "password": None, "source": None}
    superusers, passwords = {}, {}
    for path in configs + sorted(fs.glob("/etc/grub.d/*")):
        text = fs.read_text(path, max_bytes=512 * 1024) or ""
        su, pw = scan(text, path)
        superusers = superusers or su
        for name, location in pw.items():
            passwords.setdefault(name, location)
    for path in USER_CFG:
        text = fs.read_text(path, report=False) or ""
        if re.search(r"^GRUB2_PASSWORD=grub\.pbkdf2\.", text, re.M):
            # grub2-setpassword: 01_users sets superusers="root" and password_pbkdf2 root ${GRUB2_PASSWORD}
            passwords.setdefault("root", path)
            superusers = superusers or {"root": "%s (grub2-setpassword: superuser root)" % path}
    # GRUB asks for a password only when superusers is set, and only a superuser that has a password
    # line can authenticate: "set superusers=admin" with a password for "root" only is not a working
    # protection an assessor can sign (nobody can unlock it; the configuration is broken)
    with_password = sorted(n for n in superusers if n in passwords)
    protected = bool(with_password)
    return {"loader": "grub2", "config": configs[0], "password": protected,
            "source": passwords[with_password[0]] if protected else None,
            "superusers": sorted(superusers), "superusers_source": sorted(set(superusers.values()))[:1] or None,
            "users_with_password": sorted(passwords)}
