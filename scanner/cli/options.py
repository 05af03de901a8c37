"""Options shared by several commands."""
from __future__ import absolute_import

from contextlib import contextmanager


import click

from scanner.i18n import LANGS


def lang_option(f):
    return click.option("--lang", type=click.Choice(LANGS), default=None,
                        help="Output language (default from LANG) / 输出语言（默认取自 LANG）")(f)


def root_option(f):
    return click.option("--root", type=click.Path(file_okay=False, dir_okay=True, exists=True,
                                                  resolve_path=True),
                        default="/", show_default=True,
                        help="Scan a mounted image or container filesystem instead of the live host "
                             "/ 扫描已挂载的镜像或容器文件系统")(f)


def resolve_lang(lang):
    from scanner.i18n import default_lang
    return lang or default_lang()


def unknown_os_option(f):
    return click.option("--allow-unknown-os", "allow_unknown_os", is_flag=True, default=False,
                        help="Scan --root even when no operating system is found there (the report says so "
                             "at the top) / 即使 --root 下未找到操作系统也进行扫描")(f)


def check_target(root, allow_unknown_os, img=None):
    """Exit 1 when --root (or the unpacked --image ``img``) holds no recognisable OS (unless allowed);
    True when one was found."""
    from scanner.target import require_os
    return require_os(root, allow_unknown_os, image=img.path if img is not None else None)


def mark_unknown_os(report, root):
    from scanner import notices
    notices.add(report, "unknown_os", root=root)


def image_option(f):
    return click.option("--image", "image", default=None, metavar="FILE[@REPO:TAG]",
                        help="Scan a container image: a `docker save` archive or an OCI image layout (directory "
                             "or tar), unpacked into a private temporary root (needs root) / 扫描容器镜像")(f)


@contextmanager
def scan_target(root, image):
    """Yield (root to scan, Image or None): --root as given, or --image unpacked into a temporary root
    that is removed afterwards."""
    if not image:
        yield root, None
        return
    if root not in (None, "/"):
        raise click.UsageError("give --root or --image, not both")
    from scanner.image import parse_image_arg, unpacked
    path, ref = parse_image_arg(image)
    with unpacked(path, ref) as (img, tmp_root):
        yield tmp_root, img


def mark_image(report, img):
    """Name the image in the report instead of the temporary root it was unpacked into."""
    if img is None:
        return
    from scanner import notices
    report["image"] = img.to_dict()
    report.setdefault("host", {})["root"] = img.path
    platform = "/".join(p for p in (img.os, img.architecture, img.variant) if p) or "?"
    notices.add(report, "image", reference=img.references[0] if img.references else "-",
                digest=img.digest or "-", platform=platform, layers=len(img.layers), path=img.path)
    errors = report.setdefault("facts", {}).setdefault("errors", [])
    for p in img.problems[:100]:
        errors.append({"collector": "image", "path": p["path"], "message": p["message"]})
