"""Architecture of an ELF binary from its header (used offline, where uname describes the scanner)."""
from __future__ import absolute_import

import struct

# e_machine -> (32-bit name, 64-bit name); endianness refines ppc/mips below
_MACHINES = {
    3: ("i686", "i686"), 62: ("x86_64", "x86_64"), 40: ("armv7l", "armv7l"), 183: ("aarch64", "aarch64"),
    8: ("mips", "mips64"), 20: ("ppc", "ppc"), 21: ("ppc64", "ppc64"), 22: ("s390", "s390x"),
    243: ("riscv32", "riscv64"), 258: ("loongarch32", "loongarch64"), 0x9916: ("sw_64", "sw_64"),
    2: ("sparc", "sparc64"), 43: ("sparc64", "sparc64"),
}


def elf_arch(header):
    """uname -m style name for an ELF header (first 20+ bytes), or None when it is not ELF."""
    if not header or len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    ei_class = header[4:5]
    ei_data = header[5:6]
    if ei_class not in (b"\x01", b"\x02") or ei_data not in (b"\x01", b"\x02"):
        return None
    endian = "<" if ei_data == b"\x01" else ">"
    machine = struct.unpack(endian + "H", header[18:20])[0]
    names = _MACHINES.get(machine)
    if names is None:
        return None
    name = names[1] if ei_class == b"\x02" else names[0]
    if name == "ppc64" and endian == "<":
        return "ppc64le"
    if name == "mips64" and endian == "<":
        return "mips64"  # uname -m says mips64 for mips64el too
    return name
