"""Block devices as the kernel names them: SCSI vendor/model (external arrays show up here as
LUNs) and NVMe controller models. Facts only; deciding what is an array is the classifier's job.

facts.storage = {"disks": [{"name", "transport", "vendor", "model", "rev", "wwid", "source"}]}
"""
from __future__ import absolute_import

import re

NAME = "storage"
LIVE_ONLY = False

SYS_BLOCK = "/sys/block"
SYS_NVME = "/sys/class/nvme"
SKIP_RE = re.compile(r"^(loop|ram|zram|dm-|md|nbd|sr|fd|mtdblock|mmcblk\d+boot|drbd)")
MAX_DISKS = 8192  # a big multipath host has thousands of paths; beyond this we stop and say so


def _read(ctx, path):
    value = ctx.fs.read_first_line(path, report=True)
    if value and ("\x00" in value or "\ufffd" in value):
        ctx.error(path, "undecodable bytes; ignored")
        return None
    return value.strip() if value else None


def collect(ctx):
    names = ctx.fs.listdir(SYS_BLOCK)
    if names is None and ctx.fs.listdir(SYS_NVME) is None:
        return None
    disks = []
    names = [n for n in (names or []) if not SKIP_RE.match(n)]
    if len(names) > MAX_DISKS:
        ctx.error(SYS_BLOCK, "%d block devices; only the first %d were read" % (len(names), MAX_DISKS))
        names = names[:MAX_DISKS]
    seen_nvme = set()
    for name in names:
        base = "%s/%s/device/" % (SYS_BLOCK, name)
        if name.startswith("nvme"):
            model = _read(ctx, base + "model")
            ctrl = re.match(r"^(nvme\d+)", name).group(1)
            seen_nvme.add(ctrl)
            disks.append({"name": name, "transport": "nvme", "vendor": "NVME", "model": model,
                          "rev": _read(ctx, base + "firmware_rev"), "wwid": _read(ctx, "%s/%s/wwid" % (SYS_BLOCK, name)),
                          "source": base + "model"})
            continue
        vendor = _read(ctx, base + "vendor")
        model = _read(ctx, base + "model")
        if vendor is None and model is None:
            continue
        transport = "virtio" if name.startswith("vd") else ("scsi" if model is not None else None)
        disks.append({"name": name, "transport": transport, "vendor": vendor, "model": model,
                      "rev": _read(ctx, base + "rev"), "wwid": _read(ctx, base + "wwid"),
                      "source": base + "vendor"})
    for ctrl in ctx.fs.listdir(SYS_NVME) or []:
        if ctrl in seen_nvme or not re.match(r"^nvme\d+$", ctrl):
            continue
        model = _read(ctx, "%s/%s/model" % (SYS_NVME, ctrl))
        if model:
            disks.append({"name": ctrl, "transport": "nvme", "vendor": "NVME", "model": model,
                          "rev": _read(ctx, "%s/%s/firmware_rev" % (SYS_NVME, ctrl)), "wwid": None,
                          "source": "%s/%s/model" % (SYS_NVME, ctrl)})
    return {"disks": disks}
