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
    superusers = password = None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith("#"):
            continue
        if re.match(r"^set\s+superusers\s*=", line):
            superusers = where(path, number)
        elif re.match(r"^password(_pbkdf2)?\s+\S+\s+\S+", line) and "GRUB2_PASSWORD" not in line:
            # RHEL's 01_users block refers to ${GRUB2_PASSWORD}: it only counts when user.cfg sets it
            password = where(path, number)
    return superusers, password


def collect(ctx):
    fs = ctx.fs
    configs = [p for p in CONFIGS if fs.isfile(p)]
    if not configs:
        return {"loader": None, "config": None, "password": None, "source": None}
    sources = []
    superusers = password = None
    for path in configs + sorted(fs.glob("/etc/grub.d/*")):
        text = fs.read_text(path, max_bytes=512 * 1024) or ""
        su, pw = scan(text, path)
        superusers = superusers or su
        password = password or pw
    for path in USER_CFG:
        text = fs.read_text(path, report=False) or ""
        match = re.search(r"^GRUB2_PASSWORD=grub\.pbkdf2\.", text, re.M)
        if match:
            sources.append(path)
            password = password or path
            superusers = superusers or "%s (grub2-setpassword: superuser root)" % path
    protected = bool(superusers and password)
    return {"loader": "grub2", "config": configs[0], "password": protected,
            "source": password if protected else None, "superusers": superusers}
