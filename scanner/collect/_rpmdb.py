"""Read an RPM package database without the rpm tool (for offline roots).

Three on-disk formats exist:

* ``rpmdb.sqlite`` (RPM >= 4.16 default: Fedora 33+, RHEL 9, openEuler 22.03+):
  table ``Packages(hnum, blob)``;
* ``Packages.db`` "ndb" (SUSE): slot pages then blobs tagged ``BlbS``;
* ``Packages`` Berkeley DB hash (RHEL/CentOS 7-8, Kylin V10, UOS 20, openEuler 20.03):
  key/data pairs on hash pages, large data on overflow-page chains.

In each, the package is an RPM header blob without its 8-byte magic:
``il`` (index count), ``dl`` (data length), ``il`` 16-byte index entries
(tag, type, offset, count) and the data store. We only need NAME, VERSION,
RELEASE, EPOCH and ARCH.
"""
from __future__ import absolute_import

import struct

TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH = 1000, 1001, 1002, 1003, 1022
WANTED = (TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH)
TYPE_INT32, TYPE_STRING, TYPE_I18NSTRING = 4, 6, 9
MAX_INDEX = 0x0000ffff
MAX_DATA = 0x0fffffff


class RpmDbError(Exception):
    pass


def parse_header(blob):
    """{"name", "version", "arch"} from one header blob, or None when it is not a package header."""
    if len(blob) < 8:
        return None
    il, dl = struct.unpack(">II", blob[:8])
    if il > MAX_INDEX or dl > MAX_DATA or 8 + il * 16 + dl > len(blob):
        return None
    store = 8 + il * 16
    values = {}
    for i in range(il):
        tag, typ, off, count = struct.unpack(">iIiI", blob[8 + i * 16:24 + i * 16])
        if tag not in WANTED or off < 0 or off >= dl:
            continue
        pos = store + off
        if typ in (TYPE_STRING, TYPE_I18NSTRING) or (typ == 8 and count >= 1):
            end = blob.find(b"\0", pos, store + dl)
            if end < 0:
                continue
            values[tag] = blob[pos:end].decode("utf-8", "replace")
        elif typ == TYPE_INT32 and pos + 4 <= store + dl:
            values[tag] = struct.unpack(">I", blob[pos:pos + 4])[0]
    if TAG_NAME not in values or TAG_VERSION not in values:
        return None
    version = values[TAG_VERSION]
    if values.get(TAG_RELEASE):
        version += "-" + values[TAG_RELEASE]
    if values.get(TAG_EPOCH):
        version = "%s:%s" % (values[TAG_EPOCH], version)
    return {"name": values[TAG_NAME], "version": version, "arch": values.get(TAG_ARCH)}


def read_sqlite(host_path):
    import sqlite3
    uri = "file:%s?mode=ro&immutable=1" % host_path.replace("?", "%3f").replace("#", "%23")
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = conn.execute("SELECT blob FROM Packages").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise RpmDbError("not a readable rpm sqlite database: %s" % exc)
    return [h for h in (parse_header(bytes(r[0])) for r in rows) if h]


NDB_PAGE = 4096
NDB_BLOCK = 16


def read_ndb(data):
    """Packages.db (ndb, rpm lib/backend/ndb/rpmpkg.c): a 32-byte header ("RpmP", version,
    generation, slot page count), slot pages of 16-byte entries ("Slot", package index,
    block offset, block count) and blobs at offset*16 ("BlbS", package index, checksum,
    length, then the header). All integers little-endian."""
    if len(data) < 32 or data[:4] != b"RpmP":
        raise RpmDbError("not an rpm ndb Packages.db (magic %r)" % data[:4])
    slot_pages, = struct.unpack("<I", data[12:16])
    if not 0 < slot_pages <= 4096:
        raise RpmDbError("ndb slot page count %d is out of range" % slot_pages)
    out = []
    end = min(slot_pages * NDB_PAGE, len(data))
    for pos in range(32, end - 15, 16):
        if data[pos:pos + 4] != b"Slot":
            continue
        pkgidx, blkoff, blkcnt = struct.unpack("<III", data[pos + 4:pos + 16])
        if not pkgidx:
            continue
        start = blkoff * NDB_BLOCK
        if data[start:start + 4] != b"BlbS":
            continue
        blob_idx, _checksum, length = struct.unpack("<III", data[start + 4:start + 16])
        if blob_idx != pkgidx or length > blkcnt * NDB_BLOCK:
            continue
        head = parse_header(data[start + 16:start + 16 + length])
        if head:
            out.append(head)
    return out


# Berkeley DB page types and item types
P_OVERFLOW, P_HASH_UNSORTED, P_HASH, P_HASHMETA = 7, 2, 13, 8
H_KEYDATA, H_OFFPAGE = 1, 3
BDB_HASH_MAGIC = 0x061561


def read_bdb(data):
    """Berkeley DB hash ``Packages``: walk hash pages, follow overflow chains."""
    if len(data) < 512:
        raise RpmDbError("file too small for a Berkeley DB database")
    endian = None
    for fmt in ("<", ">"):
        magic, = struct.unpack(fmt + "I", data[12:16])
        if magic == BDB_HASH_MAGIC:
            endian = fmt
    if endian is None:
        raise RpmDbError("not a Berkeley DB hash database (the format could not be read; "
                         "run `rpm -qa` on the host instead)")
    pagesize, = struct.unpack(endian + "I", data[20:24])
    if pagesize < 512 or pagesize > 65536 or pagesize & (pagesize - 1):
        raise RpmDbError("Berkeley DB page size %d is invalid" % pagesize)
    npages = len(data) // pagesize

    def page(n):
        return data[n * pagesize:(n + 1) * pagesize]

    def overflow(pgno, total):
        chunks, seen = [], set()
        while pgno and pgno < npages and pgno not in seen and total > 0:
            seen.add(pgno)
            p = page(pgno)
            if p[25:26] != bytes(bytearray([P_OVERFLOW])):
                break
            next_pgno, = struct.unpack(endian + "I", p[16:20])
            hf_offset, = struct.unpack(endian + "H", p[22:24])  # bytes used on this page
            chunk = p[26:26 + hf_offset]
            chunks.append(chunk)
            total -= len(chunk)
            pgno = next_pgno
        return b"".join(chunks)

    out = []
    for n in range(1, npages):
        p = page(n)
        ptype = bytearray(p[25:26])[0] if len(p) > 25 else 0
        if ptype not in (P_HASH, P_HASH_UNSORTED):
            continue
        entries, = struct.unpack(endian + "H", p[20:22])
        offsets = [struct.unpack(endian + "H", p[26 + 2 * i:28 + 2 * i])[0] for i in range(entries)]
        # items come in key/data pairs; data is the odd index
        for i in range(1, entries, 2):
            off = offsets[i]
            if off >= pagesize:
                continue
            itype = bytearray(p[off:off + 1])[0]
            blob = None
            if itype == H_OFFPAGE:
                pgno, tlen = struct.unpack(endian + "II", p[off + 4:off + 12])
                blob = overflow(pgno, tlen)[:tlen]
            elif itype == H_KEYDATA:
                end = offsets[i - 1] if i - 1 >= 0 else pagesize
                blob = p[off + 1:end] if end > off else p[off + 1:]
            if blob:
                head = parse_header(blob)
                if head:
                    out.append(head)
    return out
