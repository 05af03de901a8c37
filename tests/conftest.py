import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def make_root(tmp_path):
    """Build a fixture filesystem root from {target_path: content} (str, bytes or ('symlink', target))."""
    def _make(files, root=None):
        base = root or tmp_path / "root"
        base.mkdir(parents=True, exist_ok=True)
        for target, content in files.items():
            dest = base / target.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, tuple) and content[0] == "symlink":
                if dest.is_symlink() or dest.exists():
                    dest.unlink()
                os.symlink(content[1], str(dest))
            elif isinstance(content, bytes):
                dest.write_bytes(content)
            else:
                dest.write_text(content, encoding="utf-8")
        return str(base)
    return _make
