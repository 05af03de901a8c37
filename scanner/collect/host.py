"""Host identity and the kind of target: bare metal, virtual machine or container."""
from __future__ import absolute_import

import socket

NAME = "host"
LIVE_ONLY = False

# DMI product/vendor strings that mean a hypervisor (systemd-detect-virt's table).
VM_DMI_MARKERS = [
    ("kvm", "KVM"), ("qemu", "QEMU"), ("vmware", "VMware"), ("virtualbox", "VirtualBox"),
    ("innotek", "VirtualBox"), ("xen", "Xen"), ("microsoft corporation", "Hyper-V"),
    ("bochs", "Bochs"), ("parallels", "Parallels"), ("openstack", "OpenStack"),
    ("alibaba cloud", "Alibaba Cloud ECS"), ("huawei cloud", "Huawei Cloud"),
    ("tencent cloud", "Tencent Cloud CVM"), ("amazon ec2", "Amazon EC2"), ("google", "Google Compute Engine"),
]


def collect(ctx):
    fs = ctx.fs
    hostname = None
    if ctx.live:
        hostname = socket.gethostname()
    else:
        hostname = fs.read_first_line("/etc/hostname")
    machine_id = fs.read_first_line("/etc/machine-id") or fs.read_first_line("/var/lib/dbus/machine-id")
    return {
        "hostname": hostname or None,
        "machine_id": machine_id or None,
        "virtualization": detect_virtualization(ctx),
    }


def detect_virtualization(ctx):
    """Return {"kind": bare-metal|vm|container|unknown, "type", "evidence": [...]}."""
    fs = ctx.fs
    evidence = []
    # Containers first: a container on a VM is still a container for the scan.
    if ctx.live:
        if fs.exists("/.dockerenv"):
            return {"kind": "container", "type": "docker", "evidence": [{"kind": "path", "value": "/.dockerenv"}]}
        if fs.exists("/run/.containerenv"):
            return {"kind": "container", "type": "podman", "evidence": [{"kind": "path", "value": "/run/.containerenv"}]}
        env1 = fs.read_bytes("/proc/1/environ", report=False)
        if env1:
            for item in env1.split(b"\0"):
                if item.startswith(b"container="):
                    kind = item.split(b"=", 1)[1].decode("utf-8", "replace")
                    return {"kind": "container", "type": kind,
                            "evidence": [{"kind": "proc", "value": "/proc/1/environ container=" + kind}]}
        cgroup = fs.read_text("/proc/1/cgroup", report=False) or ""
        for marker in ("docker", "kubepods", "containerd", "lxc", "libpod"):
            if marker in cgroup:
                return {"kind": "container", "type": marker,
                        "evidence": [{"kind": "proc", "value": "/proc/1/cgroup mentions " + marker}]}
        cpuinfo = fs.read_text("/proc/cpuinfo", report=False) or ""
        if "hypervisor" in cpuinfo.split("\nflags", 1)[-1].split("\n", 1)[0]:
            evidence.append({"kind": "cpuinfo", "value": "flags: hypervisor"})
        hv_type = fs.read_first_line("/sys/hypervisor/type")
        if hv_type:
            evidence.append({"kind": "sysfs", "value": "/sys/hypervisor/type=" + hv_type})
    for key in ("sys_vendor", "product_name", "bios_vendor", "board_vendor"):
        value = fs.read_first_line("/sys/class/dmi/id/" + key)
        if not value:
            continue
        low = value.lower()
        for marker, label in VM_DMI_MARKERS:
            if marker in low:
                evidence.append({"kind": "dmi", "value": "%s=%s" % (key, value)})
                return {"kind": "vm", "type": label, "evidence": evidence}
    if evidence:
        return {"kind": "vm", "type": None, "evidence": evidence}
    if ctx.live or fs.exists("/sys/class/dmi/id/sys_vendor"):
        return {"kind": "bare-metal", "type": None,
                "evidence": [{"kind": "absence", "value": "no hypervisor or container marker found"}]}
    return {"kind": "unknown", "type": None, "evidence": []}
