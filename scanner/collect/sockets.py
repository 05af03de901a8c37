"""Listening sockets (live only) from /proc/net/{tcp,tcp6,udp,udp6}.

TCP sockets in state LISTEN and UDP sockets with no peer (bound and
receiving) are reported with the owning pid, found by walking
/proc/<pid>/fd for the socket inodes. The walk stops as soon as every
listening inode has an owner, so it stays cheap with many processes.
"""
from __future__ import absolute_import

import os
import socket
import struct

NAME = "sockets"
LIVE_ONLY = True

PROC = "/proc"
TABLES = (("tcp", "tcp", 4), ("tcp6", "tcp", 6), ("udp", "udp", 4), ("udp6", "udp", 6))
TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


def decode_address(hexaddr, family):
    """The kernel prints addresses as host-order 32-bit words in hex."""
    raw = bytes(bytearray.fromhex(hexaddr))
    words = struct.unpack("=%dI" % (len(raw) // 4), raw)
    packed = struct.pack(">%dI" % len(words), *words)
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    addr = socket.inet_ntop(socket.AF_INET6, packed)
    if addr.startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr


def parse_table(text, proto, family):
    """[(proto, address, port, inode)] for listening entries of one /proc/net table."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        state = fields[3]
        if proto == "tcp" and state != TCP_LISTEN:
            continue
        if proto == "udp" and (state != UDP_UNCONNECTED or not fields[2].endswith(":0000")):
            continue
        local_addr, local_port = fields[1].split(":")
        try:
            address = decode_address(local_addr, family)
            port = int(local_port, 16)
            inode = int(fields[9])
        except (ValueError, OSError):
            continue
        out.append((proto if family == 4 else proto + "6", address, port, inode))
    return out


def owner_map(inodes, proc=PROC):
    """inode -> pid for the given socket inodes (stops once all are found)."""
    wanted = set("socket:[%d]" % i for i in inodes if i)
    found = {}
    if not wanted:
        return found
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        fd_dir = "%s/%s/fd" % (proc, pid)
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd_dir + "/" + fd)
            except OSError:
                continue
            if target in wanted:
                found[int(target[8:-1])] = int(pid)
                wanted.discard(target)
        if not wanted:
            break
    return found


def collect(ctx):
    entries = []
    for table, proto, family in TABLES:
        path = "%s/net/%s" % (PROC, table)
        try:
            with open(path, "r") as fh:
                text = fh.read()
        except (IOError, OSError) as exc:
            if getattr(exc, "errno", None) != 2:  # no IPv6 is normal
                ctx.error(path, "cannot read: %s" % (getattr(exc, "strerror", None) or exc))
            continue
        entries.extend(parse_table(text, proto, family))
    owners = owner_map([e[3] for e in entries])
    out, seen = [], set()
    for proto, address, port, inode in entries:
        key = (proto, address, port, inode)
        if key in seen:
            continue
        seen.add(key)
        out.append({"proto": proto, "address": address, "port": port, "pid": owners.get(inode)})
    if entries and not owners and os.geteuid() != 0:
        ctx.error(PROC + "/*/fd", "socket owners are unknown: other users' /proc/<pid>/fd is "
                  "readable only by root (run as root)")
    out.sort(key=lambda s: (s["port"], s["proto"], s["address"]))
    ctx.sockets_seen = out  # db_config reads each server's own listeners from the same snapshot
    return out
