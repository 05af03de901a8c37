"""Container images as scan targets (`xcscan scan|inventory --image FILE`).

A `docker save` archive or an OCI image layout (a directory or a tar of one) is unpacked into a private
temporary root, layer by layer, and scanned like any other ``--root``; live-only facts are "not collected".

Semantics followed (OCI image-spec, layer.md "Whiteouts"; Docker's save format, manifest.json):
* layers are applied in the order the manifest lists them;
* ``DIR/.wh.NAME`` removes NAME of *lower* layers; ``DIR/.wh..wh..opq`` hides every lower-layer entry of
  DIR; an entry of the same layer is never hidden by its own layer's whiteouts;
* a later layer's entry replaces an earlier one of the same path (a directory over a directory merges).

Safety against hostile images: entry names with ``..`` or absolute paths are refused; nothing is ever
written through a symbolic link (an entry below a link is refused, files are created with O_NOFOLLOW);
device nodes and FIFOs are not created; blobs are checked against their digests; the number of entries
and the bytes written are bounded, and the bound is checked while streaming (a layer bomb stops at the
limit, not at the end of the disk).

Python 3.7 compatible (agent side); standard library only.
"""
from __future__ import absolute_import

import errno
import hashlib
import json
import os
import platform
import posixpath
import shutil
import stat
import tarfile
import tempfile
from contextlib import contextmanager

from scanner.errors import XcscanError

DEFAULT_MAX_BYTES = 16 * 1024 ** 3     # bytes written into the temporary root, all layers
DEFAULT_MAX_ENTRIES = 2000000          # tar entries, all layers
MAX_LAYERS = 256                       # OCI/Docker images stay far below (overlayfs allows ~128 lower dirs)
MAX_JSON = 16 * 1024 * 1024            # manifest/config/index documents
MAX_NAME = 4096                        # PATH_MAX
CHUNK = 1024 * 1024

OCI_MANIFEST = ("application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json")
OCI_INDEX = ("application/vnd.oci.image.index.v1+json",
             "application/vnd.docker.distribution.manifest.list.v2+json")
REF_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
              "loongarch64": "loong64", "mips64": "mips64le", "riscv64": "riscv64", "ppc64le": "ppc64le",
              "s390x": "s390x"}
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class ImageError(XcscanError):
    """The image cannot be read or exceeds a limit."""


class ImageLimits(object):
    def __init__(self, max_bytes=DEFAULT_MAX_BYTES, max_entries=DEFAULT_MAX_ENTRIES):
        self.max_bytes = max_bytes
        self.max_entries = max_entries


class Image(object):
    """What the report says about the image."""

    def __init__(self, path, fmt):
        self.path = path
        self.format = fmt            # "docker-save" | "oci"
        self.references = []        # repository:tag names found in the archive
        self.digest = None           # image id (config digest) or manifest digest
        self.config_digest = None
        self.os = None
        self.architecture = None
        self.variant = None
        self.created = None
        self.layers = []             # [(label, opener)] in application order
        self.stats = {}
        self.problems = []           # [{"path", "message"}] entries not unpacked, and why

    def to_dict(self):
        return {
            "path": self.path,
            "format": self.format,
            "reference": self.references[0] if self.references else None,
            "references": list(self.references),
            "digest": self.digest,
            "config_digest": self.config_digest,
            "os": self.os,
            "architecture": self.architecture,
            "variant": self.variant,
            "created": self.created,
            "layers": len(self.layers),
            "entries": self.stats.get("entries", 0),
            "bytes": self.stats.get("bytes", 0),
            "skipped": self.stats.get("skipped", 0),
            "problems": self.problems[:100],
        }


# --- sources: a directory or a tar holding the archive's files --------------------------------------
def _clean_member(name):
    """A relative archive path without '.', or None when it climbs out or is absolute."""
    name = name.replace("\\", "/")
    if name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p and p != "."]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


class _DirSource(object):
    def __init__(self, path):
        self.path = os.path.realpath(path)

    def exists(self, name):
        try:
            return os.path.isfile(self._host(name))
        except ImageError:
            return False

    def _host(self, name):
        clean = _clean_member(name)
        if clean is None:
            raise ImageError("the image names a file outside itself: %r" % name, path=self.path)
        host = os.path.realpath(os.path.join(self.path, clean))
        if not host.startswith(self.path + os.sep):
            raise ImageError("%r leads outside the image directory" % name, path=self.path)
        return host

    def open(self, name):
        try:
            return open(self._host(name), "rb")
        except (IOError, OSError) as exc:
            raise ImageError("cannot read %s: %s" % (name, exc.strerror or exc), path=self.path)

    def close(self):
        pass


class _TarSource(object):
    def __init__(self, path):
        self.path = path
        try:
            self.tar = tarfile.open(path, "r:*")
            members = self.tar.getmembers()
        except (tarfile.TarError, IOError, OSError, EOFError) as exc:
            raise ImageError("not a readable tar archive: %s" % exc, path=path,
                             hint="give a `docker save` archive or an OCI image layout (directory or tar)")
        self.members = {}
        for m in members:
            clean = _clean_member(m.name)
            if clean is not None:
                self.members[clean] = m

    def exists(self, name):
        return self._member(name, quiet=True) is not None

    def _member(self, name, quiet=False):
        clean = _clean_member(name)
        for _hop in range(8):
            m = self.members.get(clean) if clean else None
            if m is None or not m.issym():
                break
            # docker save (v25+) links legacy layer paths to blobs/sha256/...: follow inside the archive only
            clean = _clean_member(posixpath.join(posixpath.dirname(clean), m.linkname))
        if m is None or not m.isfile():
            if quiet:
                return None
            raise ImageError("the archive has no file %r" % name, path=self.path)
        return m

    def open(self, name):
        return self.tar.extractfile(self._member(name))

    def close(self):
        self.tar.close()


def _source(path):
    if os.path.isdir(path):
        return _DirSource(path)
    if os.path.isfile(path):
        return _TarSource(path)
    raise ImageError("no such image file or directory", path=path)


def _json(src, name, digest=None):
    fh = src.open(name)
    try:
        data = fh.read(MAX_JSON + 1)
    finally:
        fh.close()
    if len(data) > MAX_JSON:
        raise ImageError("%s is larger than %d bytes" % (name, MAX_JSON), path=src.path)
    if digest:
        _check_digest(data, digest, name, src.path)
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise ImageError("%s is not valid JSON: %s" % (name, exc), path=src.path)


def _check_digest(data, digest, name, path):
    alg, _, hexd = (digest or "").partition(":")
    if alg != "sha256":
        return
    if hashlib.sha256(data).hexdigest() != hexd:
        raise ImageError("%s does not match its digest %s: the image is damaged or was altered" % (name, digest),
                         path=path)


# --- reading the manifest ---------------------------------------------------------------------------
def _blob_name(digest):
    alg, _, hexd = (digest or "").partition(":")
    if not alg or not hexd or "/" in alg or "/" in hexd:
        raise ImageError("bad digest %r" % digest)
    return "blobs/%s/%s" % (alg, hexd)


def _apply_config(img, config):
    if not isinstance(config, dict):
        return
    img.os = config.get("os")
    img.architecture = config.get("architecture")
    img.variant = config.get("variant")
    img.created = config.get("created")


def _read_docker_save(img, src, reference=None):
    entries = _json(src, "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise ImageError("manifest.json lists no image", path=src.path)
    chosen = None
    if reference:
        for e in entries:
            if reference in (e.get("RepoTags") or []):
                chosen = e
        if chosen is None:
            raise ImageError("the archive has no image named %s" % reference, path=src.path,
                             hint="it has: %s" % ", ".join(t for e in entries for t in (e.get("RepoTags") or [])))
    elif len(entries) > 1:
        raise ImageError("the archive holds %d images" % len(entries), path=src.path,
                         hint="name one: --image FILE@REPOSITORY:TAG (%s)" % ", ".join(
                             t for e in entries for t in (e.get("RepoTags") or [])))
    else:
        chosen = entries[0]
    img.references = [t for t in (chosen.get("RepoTags") or []) if isinstance(t, str)]
    config_name = chosen.get("Config")
    if isinstance(config_name, str):
        hexd = posixpath.basename(config_name).split(".")[0]
        img.config_digest = img.digest = "sha256:" + hexd if len(hexd) == 64 else None
        _apply_config(img, _json(src, config_name, img.config_digest))
    layers = chosen.get("Layers") or []
    if not isinstance(layers, list):
        raise ImageError("manifest.json: Layers is not a list", path=src.path)
    for name in layers:
        if not isinstance(name, str):
            raise ImageError("manifest.json: a layer name is not a string", path=src.path)
        digest = None
        if name.startswith("blobs/sha256/"):
            digest = "sha256:" + posixpath.basename(name)
        img.layers.append((name, name, digest))


def _wanted_arch():
    return ARCH_NAMES.get(platform.machine().lower(), platform.machine().lower())


def _read_oci(img, src, reference=None):
    index = _json(src, "index.json")
    stack = [(m, None) for m in (index.get("manifests") or [])] if isinstance(index, dict) else []
    candidates = []
    depth = 0
    while stack and depth < 64:
        depth += 1
        desc, ref = stack.pop(0)
        if not isinstance(desc, dict):
            continue
        ann = desc.get("annotations") or {}
        ref = next((ann[k] for k in REF_ANNOTATIONS if isinstance(ann.get(k), str)), None) or ref
        media = desc.get("mediaType")
        if media in OCI_INDEX:
            sub = _json(src, _blob_name(desc.get("digest")), desc.get("digest"))
            stack.extend((m, ref) for m in (sub.get("manifests") or []))
        elif media in OCI_MANIFEST or media is None:
            candidates.append((desc, ref))
    if reference:
        candidates = [(d, r) for d, r in candidates if r and (r == reference or r.endswith(":" + reference)
                                                            or r.endswith("/" + reference))]
    plat = [(d, r) for d, r in candidates if (d.get("platform") or {}).get("architecture") == _wanted_arch()]
    pick = (plat or candidates or [None])[0]
    if pick is None:
        raise ImageError("index.json names no image manifest%s" % (" for %s" % reference if reference else ""),
                         path=src.path)
    desc, ref = pick
    img.digest = desc.get("digest")
    img.references = [r for r in {r for _, r in candidates if r} if r] if not ref else [ref]
    manifest = _json(src, _blob_name(img.digest), img.digest)
    config = manifest.get("config") or {}
    if config.get("digest"):
        img.config_digest = config["digest"]
        _apply_config(img, _json(src, _blob_name(config["digest"]), config["digest"]))
    for layer in manifest.get("layers") or []:
        if not isinstance(layer, dict) or not layer.get("digest"):
            raise ImageError("the manifest lists a layer without a digest", path=src.path)
        img.layers.append((layer["digest"], _blob_name(layer["digest"]), layer["digest"]))


def read_image(src, path, reference=None):
    if src.exists("manifest.json"):
        img = Image(path, "docker-save")
        _read_docker_save(img, src, reference)
    elif src.exists("index.json") and src.exists("oci-layout"):
        img = Image(path, "oci")
        _read_oci(img, src, reference)
    else:
        raise ImageError("neither a `docker save` archive (manifest.json) nor an OCI image layout "
                         "(oci-layout, index.json)", path=path)
    if len(img.layers) > MAX_LAYERS:
        raise ImageError("the image has %d layers (limit %d)" % (len(img.layers), MAX_LAYERS), path=path)
    return img


# --- applying layers --------------------------------------------------------------------------------
class _HashingReader(object):
    """A read-only stream that hashes what passes through (the compressed layer blob)."""

    def __init__(self, raw):
        self.raw = raw
        self.sha = hashlib.sha256()

    def read(self, n=-1):
        data = self.raw.read(n)
        self.sha.update(data)
        return data

    def drain(self):
        while True:
            data = self.read(CHUNK)
            if not data:
                return


class _Unpacker(object):
    def __init__(self, root, limits, problems, as_root):
        self.root = root
        self.limits = limits
        self.problems = problems
        self.as_root = as_root
        self.entries = 0
        self.bytes = 0
        self.skipped = 0
        self.layer = set()      # relative paths written by the layer being applied

    def problem(self, name, message):
        self.skipped += 1
        if len(self.problems) < 1000:
            self.problems.append({"path": "/" + name, "message": message})

    def host(self, rel):
        return os.path.join(self.root, *rel.split("/"))

    def parent_ok(self, rel):
        """Create missing parent directories; refuse a parent that is a link or not a directory."""
        parts = rel.split("/")[:-1]
        cur = self.root
        for i, part in enumerate(parts):
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except OSError:
                os.mkdir(cur, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                self.problem(rel, "below the symbolic link /%s: not unpacked (nothing is written through a link)"
                             % "/".join(parts[:i + 1]))
                return False
            if not stat.S_ISDIR(st.st_mode):
                self.problem(rel, "/%s is not a directory" % "/".join(parts[:i + 1]))
                return False
        return True

    def remove(self, host_path):
        try:
            st = os.lstat(host_path)
        except OSError:
            return
        if stat.S_ISDIR(st.st_mode):
            _rmtree(host_path)
        else:
            os.unlink(host_path)

    def real_dir(self, rel):
        """Is every component of ``rel`` a directory, none a link? (never act through a link)"""
        cur = self.root
        for part in rel.split("/") if rel else ():
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except OSError:
                return False
            if not stat.S_ISDIR(st.st_mode):
                return False
        return True

    def whiteout(self, rel):
        directory, base = posixpath.split(rel)
        if base == ".wh..wh..opq":
            self.opaque(directory)
            return
        target = posixpath.join(directory, base[len(".wh."):]) if directory else base[len(".wh."):]
        if not base[len(".wh."):] or target in self.layer or not self.real_dir(directory):
            return
        self.remove(self.host(target))

    def opaque(self, directory):
        if not self.real_dir(directory):
            return
        host_dir = self.host(directory) if directory else self.root
        try:
            names = os.listdir(host_dir)
        except OSError:
            return
        for name in names:
            rel = posixpath.join(directory, name) if directory else name
            if rel in self.layer:
                if os.path.isdir(self.host(rel)) and not os.path.islink(self.host(rel)):
                    self.opaque(rel)   # lower-layer content below a directory of this layer is hidden too
                continue
            self.remove(self.host(rel))

    def count(self):
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise ImageError("the image has more than %d entries: not unpacked further" % self.limits.max_entries,
                             hint="an archive bomb, or raise the limit")

    def write_file(self, rel, member, data):
        path = self.host(rel)
        self.remove(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            while True:
                chunk = data.read(CHUNK) if data is not None else b""
                if not chunk:
                    break
                self.bytes += len(chunk)
                if self.bytes > self.limits.max_bytes:
                    raise ImageError("the image unpacks to more than %d bytes: not unpacked further"
                                     % self.limits.max_bytes, hint="an archive bomb, or raise the limit")
                os.write(fd, chunk)
            self.set_meta(fd, member)
        finally:
            os.close(fd)

    def set_meta(self, fd, member):
        if self.as_root:
            os.fchown(fd, member.uid, member.gid)   # before chmod: chown clears set-id bits
        os.fchmod(fd, member.mode & 0o7777)

    def apply(self, stream, label):
        self.layer = set()
        dirs = []
        try:
            tar = tarfile.open(fileobj=stream, mode="r|*")
        except tarfile.TarError as exc:
            raise ImageError("layer %s is not a readable tar: %s" % (label, exc))
        with tar:
            for member in tar:
                self.count()
                rel = _clean_member(member.name)
                if rel is None:
                    if member.name.strip("./"):
                        self.problem(member.name.lstrip("/"), "name leaves the root: not unpacked")
                    continue
                if len(rel) > MAX_NAME:
                    self.problem(rel[:200], "name longer than %d bytes: not unpacked" % MAX_NAME)
                    continue
                base = posixpath.basename(rel)
                if base.startswith(".wh."):
                    self.whiteout(rel)
                    continue
                if not self.parent_ok(rel):
                    continue
                path = self.host(rel)
                if member.isdir():
                    if not (os.path.isdir(path) and not os.path.islink(path)):
                        self.remove(path)
                        os.mkdir(path, 0o700)
                    dirs.append((rel, path, member))
                elif member.isreg():
                    self.write_file(rel, member, tar.extractfile(member))
                elif member.issym():
                    self.remove(path)
                    os.symlink(member.linkname, path)
                    if self.as_root:
                        os.lchown(path, member.uid, member.gid)
                elif member.islnk():
                    src = _clean_member(member.linkname)
                    src_path = self.host(src) if src else None
                    if src_path is None or not os.path.isfile(src_path) or os.path.islink(src_path) \
                            or not self.inside(src_path):
                        self.problem(rel, "hard link to %s, which is not a file of the image: not unpacked"
                                     % member.linkname)
                        continue
                    self.remove(path)
                    os.link(src_path, path)
                else:
                    self.problem(rel, "device node or FIFO: not created")
                    continue
                self.layer.add(rel)
        for rel, path, member in reversed(dirs):   # children first, so read-only directories still fill
            if not self.real_dir(rel):
                continue
            try:   # the path may have been replaced by a link later in the layer: never follow it
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                continue
            try:
                self.set_meta(fd, member)
            finally:
                os.close(fd)

    def inside(self, host_path):
        real = os.path.realpath(host_path)
        return real == self.root or real.startswith(self.root + os.sep)


def _open_layer(src, name, label):
    raw = src.open(name)
    reader = _HashingReader(raw)
    head = getattr(raw, "peek", lambda n: b"")(4)[:4]
    if head == ZSTD_MAGIC:
        raw.close()
        raise ImageError("layer %s is zstd-compressed, which this Python cannot read" % label,
                         hint="convert the image to gzip layers (e.g. `skopeo copy --dest-compress-format gzip`)")
    return raw, reader


def _rmtree(path):
    def onerror(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=onerror)


def parse_image_arg(value):
    """``FILE`` or ``FILE@REPOSITORY:TAG`` (an archive holding several images)."""
    if "@" in value and not os.path.exists(value):
        path, _, ref = value.rpartition("@")
        return path, ref or None
    return value, None


@contextmanager
def unpacked(path, reference=None, limits=None, tmp_dir=None):
    """Yield (Image, temporary root) for ``path``; the root is removed afterwards."""
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise ImageError("unpacking an image needs root, so that files keep the owners the image gives them "
                         "(ownership and set-id checks would otherwise judge the scanning user's files)",
                         path=path, hint="run as root")
    limits = limits or ImageLimits()
    src = _source(path)
    try:
        img = read_image(src, path, reference)
        root = os.path.realpath(tempfile.mkdtemp(prefix="xcscan-image-", dir=tmp_dir))
        try:
            os.chmod(root, 0o755)
            unpacker = _Unpacker(root, limits, img.problems, as_root=True)
            for label, name, digest in img.layers:
                raw, reader = _open_layer(src, name, label)
                try:
                    unpacker.apply(reader, label)
                    reader.drain()
                finally:
                    raw.close()
                if digest and digest.startswith("sha256:") and reader.sha.hexdigest() != digest[7:]:
                    raise ImageError("layer %s does not match its digest: the image is damaged or was altered"
                                     % label, path=path)
            img.stats = {"entries": unpacker.entries, "bytes": unpacker.bytes, "skipped": unpacker.skipped}
            yield img, root
        finally:
            _rmtree(root)
    except (IOError, OSError) as exc:
        if getattr(exc, "errno", None) == errno.ENOSPC:
            raise ImageError("no space left while unpacking the image", path=path,
                             hint="set TMPDIR to a filesystem with room")
        raise
    finally:
        src.close()
