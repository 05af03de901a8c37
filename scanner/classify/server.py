"""facts.dmi -> the server component (brand from DMI sys_vendor, board_vendor as fallback).

A virtual machine's DMI names the hypervisor (QEMU, VMware, ...) or the cloud, not a server
brand: no server component then; host.virtualization says what it is.
"""
from __future__ import absolute_import

from scanner.classify.component import make_component, unknown_component
from scanner.classify.hwcommon import any_search, products_with


def _is_vm(facts, dmi):
    virt = (facts.get("host") or {}).get("virtualization") or {}
    if virt.get("kind") == "vm":
        return True
    from scanner.collect.host import vm_marker
    return any(vm_marker(dmi.get(field)) for field in ("sys_vendor", "product_name", "board_vendor", "bios_vendor"))


def classify(facts, catalog):
    dmi = facts.get("dmi")
    if not dmi or _is_vm(facts, dmi):
        return []
    evidence = [dict(e) for e in dmi.get("evidence") or []]
    details = dict((k, dmi.get(k)) for k in ("sys_vendor", "product_name", "product_family", "board_vendor",
                                             "board_name") if dmi.get(k))
    model = dmi.get("product_name")
    for field in ("sys_vendor", "board_vendor"):
        value = dmi.get(field)
        if not value:
            continue
        for product, match in products_with(catalog, "sys_vendor"):
            if any_search(match.get("sys_vendor"), value):
                return [make_component(product, evidence, model=model, details=details, category="server")]
        if field == "sys_vendor":
            break  # a real sys_vendor that matches nothing is an unknown brand, not the board's
    label = dmi.get("sys_vendor") or dmi.get("board_vendor")
    if not label:
        # blank vendor fields (some Huawei BMC firmware): a product/board name that only one brand uses
        for field in ("product_name", "board_name"):
            value = dmi.get(field)
            if not value:
                continue
            for product, match in products_with(catalog, "product_name"):
                if any_search(match.get("product_name"), value):
                    return [make_component(product, evidence + [{"kind": "dmi", "value": "%s=%s" % (field, value)}],
                                           model=model, details=details, category="server")]
        return []
    return [unknown_component("server", label, evidence, model=model, details=details)]
