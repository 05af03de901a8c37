"""Pure text parsers (no file access): os-release, /proc/cpuinfo, lscpu, dmidecode, pci.ids, ELF headers.

Each takes the text (or bytes) a collector read through RootFS and returns plain
dicts; malformed input never raises, it yields fewer facts (and, where useful,
a list of problems the caller records in facts.errors).
"""
