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
    # Chinese public and private clouds (their KVM/OpenStack guests name the cloud in DMI); compared with
    # spaces and punctuation removed, so "HUAWEI CLOUD", "HuaweiCloud" and "Huawei-Cloud" are one marker
    ("huaweicloud", "Huawei Cloud"), ("ctyun", "CTyun (Tianyi Cloud)"), ("tianyiyun", "CTyun (Tianyi Cloud)"),
    ("ctcloud", "CTyun (Tianyi Cloud)"), ("chinatelecomcloud", "CTyun (Tianyi Cloud)"),
    ("alibabacloud", "Alibaba Cloud ECS"), ("aliyun", "Alibaba Cloud ECS"), ("tencentcloud", "Tencent Cloud CVM"),
    ("baiducloud", "Baidu AI Cloud"), ("jdcloud", "JD Cloud"), ("ksyun", "Kingsoft Cloud"),
    ("kingsoftcloud", "Kingsoft Cloud"), ("volcengine", "Volcano Engine"), ("ucloud", "UCloud"),
    ("qingcloud", "QingCloud"), ("kubevirt", "KubeVirt"), ("fusioncompute", "Huawei FusionCompute"),
    ("openstacknova", "OpenStack"), ("rhevhypervisor", "RHEV"), ("ovirt", "oVirt"),
]


# Chassis asset tags that clouds set on their guests, matched exactly (an asset tag is free text on a physical
# server: "XEN-RACK-07" must not read as Xen). cloud-init DataSourceOpenStack VALID_DMI_ASSET_TAGS
# (DMI_ASSET_TAG_HUAWEICLOUD = "HUAWEICLOUD", "OpenTelekomCloud", "SAP CCloud VM", "Samsung Cloud Platform" and
# the Nova product names); Azure's tag is "MSFT AZURE VM" in decimal ASCII (cloud-init DataSourceAzure).
CLOUD_ASSET_TAGS = {
    "HUAWEICLOUD": "Huawei Cloud", "OpenTelekomCloud": "Open Telekom Cloud", "SAP CCloud VM": "SAP Converged Cloud",
    "Samsung Cloud Platform": "Samsung Cloud Platform", "OpenStack Nova": "OpenStack", "OpenStack Compute": "OpenStack",
    "7783-7084-3265-9085-8269-3286-77": "Hyper-V",
}


def vm_marker(value):
    """The hypervisor/cloud label a DMI string names, or None (case, spaces and punctuation ignored)."""
    low = (value or "").lower()
    squashed = "".join(ch for ch in low if ch.isalnum())
    for marker, label in VM_DMI_MARKERS:
        if marker in low or marker.replace(" ", "") in squashed:
            return label
    return None


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
    """Return {"kind": bare-metal|vm|container|unknown, "type", "evidence": [...]}.

    A container reports kind "container"; when the machine under it is itself a virtual
    machine (cpuinfo hypervisor flag, hypervisor DMI), "on_vm" is true and its evidence is
    appended, so a container on a cloud VM is not mistaken for a container on bare metal.
    """
    container = _detect_container(ctx) if ctx.live else None
    vm = _detect_vm(ctx)
    if container is not None:
        container["on_vm"] = (vm["kind"] == "vm") if vm is not None else None
        if vm is not None and vm["kind"] == "vm":
            container["vm_type"] = vm["type"]
            container["evidence"].extend(vm["evidence"])
        return container
    if vm is not None:
        return vm
    if ctx.live or ctx.fs.exists("/sys/class/dmi/id/sys_vendor"):
        return {"kind": "bare-metal", "type": None,
                "evidence": [{"kind": "absence", "value": "no hypervisor or container marker found"}]}
    return {"kind": "unknown", "type": None, "evidence": []}


def _detect_container(ctx):
    fs = ctx.fs
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
    return None


def _detect_vm(ctx):
    """{"kind": "vm", ...} when a hypervisor shows; None when nothing says so."""
    fs = ctx.fs
    evidence = []
    if ctx.live:
        cpuinfo = fs.read_text("/proc/cpuinfo", max_bytes=256 * 1024, report=False) or ""
        flags = cpuinfo.split("\nflags", 1)[-1].split("\n", 1)[0] if "\nflags" in cpuinfo else ""
        if "hypervisor" in flags.split():
            evidence.append({"kind": "cpuinfo", "value": "flags: hypervisor"})
        hv_type = fs.read_first_line("/sys/hypervisor/type")
        if hv_type:
            evidence.append({"kind": "sysfs", "value": "/sys/hypervisor/type=" + hv_type})
    tag = (fs.read_first_line("/sys/class/dmi/id/chassis_asset_tag") or "").strip()
    if tag in CLOUD_ASSET_TAGS:  # the cloud's own mark: more specific than the hypervisor named elsewhere
        evidence.append({"kind": "dmi", "value": "chassis_asset_tag=%s" % tag})
        return {"kind": "vm", "type": CLOUD_ASSET_TAGS[tag], "evidence": evidence}
    for key in ("sys_vendor", "product_name", "bios_vendor", "board_vendor"):
        value = fs.read_first_line("/sys/class/dmi/id/" + key)
        if not value:
            continue
        label = vm_marker(value)
        if label:
            evidence.append({"kind": "dmi", "value": "%s=%s" % (key, value)})
            return {"kind": "vm", "type": label, "evidence": evidence}
    if evidence:
        return {"kind": "vm", "type": None, "evidence": evidence}
    return None
