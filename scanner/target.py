"""Is there an operating system under ``--root``? An empty directory, an image that is not mounted
(only an empty mount point or lost+found), a root whose /usr is a separate partition left unmounted,
or a wrong path would otherwise be scanned as a host with nothing on it: a dozen passes and a score
for no system at all."""
from __future__ import absolute_import


def _candidates():
    from scanner.collect.os import OS_RELEASE_PATHS, RELEASE_FILES
    return OS_RELEASE_PATHS + RELEASE_FILES


def os_marker(root):
    """(the first os-release or vendor release file under ``root`` that is a file, [dangling
    links among them]). Only presence counts here: a damaged file is the os collector's business."""
    from scanner.rootfs import RootFS
    fs = RootFS(root)
    dangling = []
    for path in _candidates():
        if fs.isfile(path):
            return path, dangling
        if fs.lstat(path) is not None and not fs.exists(path):
            dangling.append("%s -> %s" % (path, fs.readlink(path)))
    return None, dangling


def require_os(root, allow_unknown, image=None):
    """True when an OS is recognisable under ``root``; otherwise raise (exit 1) unless
    ``allow_unknown``, then False (the caller marks the report). ``image``: the --image file that
    was unpacked into ``root`` (a temporary directory the user never named)."""
    found, dangling = os_marker(root)
    if found is not None:
        return True
    if allow_unknown:
        return False
    from scanner.errors import XcscanError
    if image is not None:
        raise XcscanError("no operating system found in image %s" % image,
                          hint="its layers have no /etc/os-release, /usr/lib/os-release or vendor release file "
                               "(a scratch or distroless image?); give --allow-unknown-os to scan its files anyway")
    if dangling:
        hint = ("%s points nowhere inside the root: is a separate /usr partition not mounted? "
                "Mount it, or give --allow-unknown-os to scan anyway" % "; ".join(dangling))
    else:
        hint = ("there is no /etc/os-release, /usr/lib/os-release or vendor release file such as "
                "/etc/kylin-release; mount the image, or give --allow-unknown-os to scan it anyway")
    raise XcscanError("no operating system found under %s — is the image mounted?" % root, hint=hint)


def require_os_for_agent(root):
    """The agent's ``root`` (an image it scans or enrolls) must hold an OS: an image not mounted at
    the time of a cron run would otherwise be spooled and uploaded as a host with nothing on it."""
    if not root or root == "/":
        return
    from scanner.errors import XcscanError
    try:
        require_os(root, False)
    except XcscanError as exc:
        raise XcscanError(exc.message, hint="mount the image at %s first (it is the root in the agent "
                                            "configuration); nothing was scanned or sent" % root)
