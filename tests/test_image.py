"""Container images as scan targets: real `docker save` archives and OCI image layouts built here with
tarfile (the same files `docker save` / `skopeo copy oci:` write; no Docker engine needed), with
whiteouts, opaque directories, links pointing out of the root, tampered blobs and bombs."""
import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest
from click.testing import CliRunner

from scanner.cli import cli
from scanner.image import ImageError, ImageLimits, unpacked

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking an image keeps its owners: needs root")

OPENEULER = ('NAME="openEuler"\nVERSION="22.03 (LTS-SP3)"\nID="openEuler"\nVERSION_ID="22.03"\n'
             'PRETTY_NAME="openEuler 22.03 (LTS-SP3)"\nANSI_COLOR="0;31"\n')


def entry(name, data=b"", kind="file", mode=0o644, uid=0, gid=0, link=None):
    return {"name": name, "data": data if isinstance(data, bytes) else data.encode(), "kind": kind,
            "mode": mode, "uid": uid, "gid": gid, "link": link}


def layer_tar(entries, compress=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e["name"])
            info.mode, info.uid, info.gid = e["mode"], e["uid"], e["gid"]
            if e["kind"] == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e["kind"] == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e["link"]
                tar.addfile(info)
            elif e["kind"] == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, e["link"]
                tar.addfile(info)
            elif e["kind"] == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                tar.addfile(info)
            else:
                info.size = len(e["data"])
                tar.addfile(info, io.BytesIO(e["data"]))
    data = buf.getvalue()
    return gzip.compress(data) if compress else data


def config_doc(arch="amd64"):
    return json.dumps({"architecture": arch, "os": "linux", "created": "2026-11-30T08:00:00Z",
                       "rootfs": {"type": "layers", "diff_ids": []}}).encode()


def add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def docker_save(path, images):
    """images: [(repo_tags, [layer bytes])] -> a `docker save` archive (legacy layout: <id>/layer.tar)."""
    manifest = []
    with tarfile.open(str(path), "w") as tar:
        for tags, layers in images:
            cfg = config_doc()
            cfg_hex = hashlib.sha256(cfg).hexdigest()
            add_bytes(tar, cfg_hex + ".json", cfg)
            names = []
            for data in layers:
                lid = hashlib.sha256(data).hexdigest()
                add_bytes(tar, lid + "/layer.tar", data)
                names.append(lid + "/layer.tar")
            manifest.append({"Config": cfg_hex + ".json", "RepoTags": tags, "Layers": names})
        add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    return str(path)


def oci_layout(directory, ref, layers, as_tar=None):
    """An OCI image layout (image-spec layout.md) with gzip layers, as a directory or a tar of it."""
    blobs = {}

    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest, len(data)

    cfg_d, cfg_n = blob(config_doc())
    layer_descs = []
    for data in layers:
        d, n = blob(data)
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cfg_d, "size": cfg_n},
                           "layers": layer_descs}).encode()
    man_d, man_n = blob(manifest)
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_d, "size": man_n,
         "annotations": {"org.opencontainers.image.ref.name": ref}}]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index}
    for d, data in blobs.items():
        files["blobs/sha256/" + d.split(":")[1]] = data
    if as_tar:
        with tarfile.open(str(as_tar), "w") as tar:
            for name, data in sorted(files.items()):
                add_bytes(tar, name, data)
        return str(as_tar), man_d
    for name, data in files.items():
        p = os.path.join(str(directory), name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(data)
    return str(directory), man_d


BASE = [
    entry("etc", kind="dir", mode=0o755),
    entry("etc/os-release", OPENEULER),
    entry("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n"),
    entry("etc/shadow", "root:*:19000:0:99999:7:::\n", mode=0o000),
    entry("etc/removed.conf", "gone in layer 2\n"),
    entry("opt/old/app.conf", "lower layer\n"),
    entry("opt/keep-me-not", "lower layer\n"),
    entry("usr/bin/ping", b"\x7fELF", mode=0o4755),
    entry("var/log/app.log", "x" * 100, uid=1000, gid=1000, mode=0o600),
]
TOP = [
    entry("etc/.wh.removed.conf"),
    entry("opt/new.conf", "same layer, written before the opaque marker\n"),
    entry("opt/.wh..wh..opq"),
    entry("usr/bin/.wh.ping"),
    entry("usr/bin/ping", b"\x7fELF2", mode=0o0755),
    entry("etc/hostname", "app-image\n"),
]


def test_docker_save_layers_and_whiteouts_apply_in_order(tmp_path):
    archive = docker_save(tmp_path / "app.tar", [(["example/app:1.0"], [layer_tar(BASE), layer_tar(TOP)])])
    with unpacked(archive) as (img, root):
        assert img.format == "docker-save" and img.references == ["example/app:1.0"]
        assert img.digest.startswith("sha256:") and len(img.layers) == 2
        assert (img.os, img.architecture) == ("linux", "amd64")
        assert not os.path.exists(os.path.join(root, "etc/removed.conf"))
        assert sorted(os.listdir(os.path.join(root, "opt"))) == ["new.conf"]   # lower content hidden, own kept
        st = os.stat(os.path.join(root, "usr/bin/ping"))
        assert st.st_mode & 0o7777 == 0o755                                 # re-added without the set-uid bit
        log = os.stat(os.path.join(root, "var/log/app.log"))
        assert (log.st_uid, log.st_gid, log.st_mode & 0o777) == (1000, 1000, 0o600)
        assert os.stat(os.path.join(root, "etc/shadow")).st_mode & 0o777 == 0
        kept = root
    assert not os.path.exists(kept), "the temporary root is removed afterwards"


def test_scan_of_a_docker_save_archive_names_the_image_and_identifies_its_os(tmp_path):
    archive = docker_save(tmp_path / "app.tar", [(["example/app:1.0"], [layer_tar(BASE), layer_tar(TOP)])])
    res = CliRunner().invoke(cli, ["scan", "--image", archive, "--profile", "mlps-l3", "--format", "json",
                                   "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout if hasattr(res, "stdout") else res.output)
    assert report["image"]["reference"] == "example/app:1.0"
    assert report["image"]["digest"].startswith("sha256:")
    assert report["host"]["root"] == archive and report["host"]["live"] is False
    assert report["host"]["hostname"] == "app-image"
    os_comp = [c for c in report["inventory"]["components"] if c["category"] == "os"]
    assert os_comp and os_comp[0]["product_id"] == "openeuler" and os_comp[0]["origin"] == "domestic"
    assert "xcscan-image-" not in json.dumps(report), "the temporary root must not leak into the report"
    assert any(n["code"] == "image" for n in report["notices"])


def test_oci_layout_directory_and_tar_with_gzip_layers(tmp_path):
    layers = [layer_tar(BASE, compress=True), layer_tar(TOP, compress=True)]
    for as_tar in (None, tmp_path / "oci.tar"):
        path, man_digest = oci_layout(tmp_path / "layout", "docker.io/example/app:2.1", layers, as_tar=as_tar)
        with unpacked(path) as (img, root):
            assert img.format == "oci" and img.digest == man_digest
            assert img.references == ["docker.io/example/app:2.1"]
            assert os.path.isfile(os.path.join(root, "etc/os-release"))
            assert not os.path.exists(os.path.join(root, "opt/old"))


def test_a_tampered_layer_is_refused(tmp_path):
    path, _ = oci_layout(tmp_path / "layout", "app:1", [layer_tar(BASE, compress=True)])
    blobs = os.path.join(path, "blobs", "sha256")
    layer = max((os.path.join(blobs, n) for n in os.listdir(blobs)), key=os.path.getsize)
    with open(layer, "wb") as fh:
        fh.write(layer_tar(BASE + [entry("etc/sudoers", "evil ALL=(ALL) NOPASSWD: ALL\n")], compress=True))
    with pytest.raises(ImageError, match="does not match its digest"):
        with unpacked(path):
            pass


def test_hostile_entries_never_write_outside_the_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host file\n")
    hostile = [
        entry("etc", kind="symlink", link=str(outside)),          # a link out of the root ...
        entry("etc/passwd", "root::0:0::/:/bin/sh\n"),              # ... and a write through it
        entry("../escape", "climbs out\n"),
        entry("/abs-escape", "absolute\n"),
        entry("bin/hard", kind="hardlink", link=str(outside / "secret").lstrip("/")),
        entry("dev/null", kind="chr"),
        entry("tmp/.wh.." + "/x"),
    ]
    cleanup = [entry("etc/.wh.secret"), entry("etc/.wh..wh..opq")]
    archive = docker_save(tmp_path / "evil.tar", [(["evil:1"], [layer_tar(hostile), layer_tar(cleanup)])])
    with unpacked(archive) as (img, root):
        assert os.path.islink(os.path.join(root, "etc"))
        assert not os.path.exists(os.path.join(root, "dev/null"))
        assert not os.path.exists(os.path.join(root, "bin/hard"))
        messages = " | ".join(p["message"] for p in img.problems)
        assert "symbolic link" in messages and "leaves the root" in messages
        assert "device node" in messages and "hard link" in messages
    assert sorted(os.listdir(str(outside))) == ["secret"]
    assert (outside / "secret").read_text() == "host file\n"
    assert not (tmp_path / "escape").exists()


def test_bombs_stop_at_the_limits_and_leave_nothing_behind(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    zeros = layer_tar([entry("big", b"\0" * (8 * 1024 * 1024))], compress=True)
    assert len(zeros) < 64 * 1024                                   # 8 MiB from a few KB
    archive = docker_save(tmp_path / "bomb.tar", [(["bomb:1"], [zeros])])
    with pytest.raises(ImageError, match="more than 1048576 bytes"):
        with unpacked(archive, limits=ImageLimits(max_bytes=1024 * 1024), tmp_dir=str(work)):
            pass
    many = layer_tar([entry("f%05d" % i, "") for i in range(3000)])
    archive = docker_save(tmp_path / "many.tar", [(["many:1"], [many])])
    with pytest.raises(ImageError, match="more than 1000 entries"):
        with unpacked(archive, limits=ImageLimits(max_entries=1000), tmp_dir=str(work)):
            pass
    assert os.listdir(str(work)) == []


def test_an_archive_of_several_images_needs_a_name(tmp_path):
    archive = docker_save(tmp_path / "two.tar", [(["a/one:1"], [layer_tar(BASE)]),
                                                  (["a/two:2"], [layer_tar(BASE + TOP)])])
    with pytest.raises(ImageError, match="holds 2 images") as err:
        with unpacked(archive):
            pass
    assert "a/one:1" in str(err.value) and "a/two:2" in str(err.value)
    res = CliRunner().invoke(cli, ["inventory", "--image", archive + "@a/two:2", "--format", "json", "--quiet"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout if hasattr(res, "stdout") else res.output)["image"]["reference"] == "a/two:2"


def test_cli_refuses_root_and_image_together_and_explains_a_non_image(tmp_path):
    archive = docker_save(tmp_path / "app.tar", [(["example/app:1.0"], [layer_tar(BASE)])])
    res = CliRunner().invoke(cli, ["scan", "--root", str(tmp_path), "--image", archive])
    assert res.exit_code == 2 and "not both" in res.output
    junk = tmp_path / "junk.tar"
    with tarfile.open(str(junk), "w") as tar:
        add_bytes(tar, "readme.txt", b"hello")
    res = CliRunner().invoke(cli, ["scan", "--image", str(junk)])
    assert res.exit_code == 1 and "docker save" in res.output and "OCI image layout" in res.output


def test_an_image_with_no_os_is_refused_unless_allowed(tmp_path):
    """A scratch image (one static binary, no os-release): like an empty --root, exit 1 naming the
    image unless --allow-unknown-os, then the report says so at its top."""
    scratch = [entry("app", b"\x7fELF static", mode=0o755), entry("etc", kind="dir", mode=0o755)]
    archive = docker_save(tmp_path / "scratch.tar", [(["example/scratch:1"], [layer_tar(scratch)])])
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        runner = CliRunner()
    res = runner.invoke(cli, ["scan", "--image", archive, "--profile", "xinchuang", "--format", "json",
                              "--lang", "en"], catch_exceptions=False)
    assert res.exit_code == 1 and res.stdout == ""
    assert "no operating system found in image %s" % archive in res.stderr
    assert "scratch or distroless image?" in res.stderr and "--allow-unknown-os" in res.stderr
    assert "xcscan-image-" not in res.stderr           # the temporary root is not what the user named
    res = runner.invoke(cli, ["inventory", "--image", archive, "--lang", "zh"], catch_exceptions=False)
    assert res.exit_code == 1 and "xcscan：错误：镜像 %s 中未找到操作系统" % archive in res.stderr
    res = runner.invoke(cli, ["scan", "--image", archive, "--allow-unknown-os", "--profile", "xinchuang",
                              "--format", "json", "--lang", "en"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert {"code": "unknown_os", "fields": {"root": archive}} in report["notices"]
