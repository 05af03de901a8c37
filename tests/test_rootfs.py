import os

from scanner.rootfs import RootFS


def test_absolute_symlink_is_rerooted(make_root, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("HOST")
    root = make_root({"/usr/lib/os-release": "ID=imagefile\n",
                      "/etc/os-release": ("symlink", "/usr/lib/os-release"),
                      "/etc/escape": ("symlink", str(secret))})
    fs = RootFS(root)
    assert fs.read_text("/etc/os-release") == "ID=imagefile\n"
    # an absolute link to a host path resolves inside the root: not found, never the host file
    assert fs.read_text("/etc/escape") is None


def test_dotdot_cannot_climb_out_of_root(make_root, tmp_path):
    (tmp_path / "outside").write_text("HOST")
    root = make_root({"/etc/x": ("symlink", "../../../../outside"),
                      "/outside": "IMAGE"})
    fs = RootFS(root)
    assert fs.read_text("/etc/x") == "IMAGE"
    assert fs.read_text("/../../outside") == "IMAGE"


def test_relative_symlink_like_centos_release(make_root):
    root = make_root({"/etc/centos-release": "CentOS Linux release 7.1.1503 (Core)\n",
                      "/etc/redhat-release": ("symlink", "centos-release")})
    assert RootFS(root).read_first_line("/etc/redhat-release").startswith("CentOS Linux release 7")


def test_symlink_loop_is_an_error_not_a_crash(make_root):
    root = make_root({"/etc/a": ("symlink", "b"), "/etc/b": ("symlink", "a")})
    fs = RootFS(root)
    assert fs.read_text("/etc/a") is None
    assert fs.errors and fs.errors[0]["path"] == "/etc/a"
    assert "loop" in fs.errors[0]["message"]


def test_missing_file_is_silent_unreadable_is_reported(make_root):
    root = make_root({"/etc/shadow": "root:*:1::::::\n"})
    os.chmod(os.path.join(root, "etc/shadow"), 0)
    fs = RootFS(root)
    assert fs.read_text("/etc/nothing") is None
    assert fs.errors == []
    if os.geteuid() == 0:
        return  # root reads mode-0 files; the unprivileged case is covered in test_unprivileged
    assert fs.read_text("/etc/shadow") is None
    assert "permission denied" in fs.errors[0]["message"]


def test_bounded_read_records_truncation(make_root):
    root = make_root({"/big": "x" * 5000})
    fs = RootFS(root)
    assert len(fs.read_text("/big", max_bytes=100)) == 100
    assert "larger than 100 bytes" in fs.errors[0]["message"]


def test_directory_instead_of_file(make_root):
    root = make_root({"/etc/os-release/inner": "x"})
    fs = RootFS(root)
    assert fs.read_text("/etc/os-release") is None
    assert "directory" in fs.errors[0]["message"]


def test_the_normal_path_shortcut_is_posixpath_normpath():
    """RootFS maps host-root paths with _normpath: a path already normal is returned as is, anything
    else (".", "..", "//", a trailing slash, hidden names) goes through posixpath.normpath."""
    import itertools
    import posixpath
    from scanner.rootfs import _normpath
    parts = ["", ".", "..", "a", "b.c", ".h", "x..", "...", u"\u00e9"]
    seen = 0
    for n in range(5):
        for combo in itertools.product(parts, repeat=n):
            p = "/".join(combo)
            for q in (p, "/" + p, "//" + p, "///" + p, p + "/", "/" + p + "/."):
                assert _normpath(q) == posixpath.normpath(q), q
                seen += 1
    assert seen > 40000
    assert _normpath("/etc/ssh/sshd_config") == "/etc/ssh/sshd_config" and _normpath("/") == "/"
