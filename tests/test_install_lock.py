"""The README's install commands install from the locks, and the environment the tests run in is the
locked one: every package pinned in requirements/lock.txt that is installed has exactly the locked version."""
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_commands():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    return re.findall(r"```sh\n(.+?)\n```", text[:2000])


def _pins(path):
    pins = {}
    for line in open(os.path.join(REPO, path), encoding="utf-8"):
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)\s*(;.*)?$", line.strip())
        if m:
            pins.setdefault(m.group(1).lower().replace("_", "-"), []).append((m.group(2), m.group(3)))
    return pins


def test_readme_commands_install_from_the_locks():
    scan_cmd, test_cmd = _readme_commands()[:2]
    assert "-c requirements/agent-lock.txt" in scan_cmd
    assert "-c requirements/lock.txt" in test_cmd
    ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
    assert test_cmd in ci, ".ci/run must run the README test command verbatim"


def test_installed_versions_are_the_locked_ones():
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python 3.7
        pytest.skip("importlib.metadata needs Python 3.8")
    pins = _pins("requirements/lock.txt")
    assert "pytest" in pins and "schemathesis" in pins
    checked, wrong = 0, []
    for name, versions in sorted(pins.items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # platform-specific (e.g. uvloop on Windows) or not installed by this extra
        checked += 1
        if have not in [v for v, _ in versions]:
            wrong.append("%s %s (locked %s)" % (name, have, versions[0][0]))
    assert checked >= 40
    assert not wrong, "installed versions differ from requirements/lock.txt: %s — install with " \
        "`pip install -c requirements/lock.txt -e '.[server,test]'`" % ", ".join(wrong)


def test_agent_lock_covers_python_37_and_only_agent_dependencies():
    pins = _pins("requirements/agent-lock.txt")
    for dep in ("click", "pyyaml", "cryptography"):
        assert dep in pins
    assert "fastapi" not in pins and "pytest" not in pins
    assert any("< '3.8'" in (marker or "") for v in pins.values() for _, marker in v), \
        "the agent lock must be universal down to Python 3.7"


def test_every_agent_dependency_is_imported_by_the_agent():
    """A declared agent dependency that nothing imports is installed on every production host for
    nothing (tabulate was, after the terminal renderer stopped using it)."""
    import tomllib
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    import_name = {"pyyaml": "yaml"}
    source = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, "scanner")):
        dirnames[:] = [d for d in dirnames if d not in ("server", "__pycache__")]
        for name in filenames:
            if name.endswith(".py"):
                with open(os.path.join(dirpath, name), encoding="utf-8") as fh:
                    source.append(fh.read())
    text = "\n".join(source)
    unused = []
    for dep in deps:
        name = re.split(r"[<>=!~ ;\[]", dep, 1)[0].strip().lower()
        mod = import_name.get(name, name)
        if not re.search(r"^\s*(import|from)\s+%s\b" % re.escape(mod), text, re.M):
            unused.append(name)
    assert unused == []


def _declared():
    import tomllib
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    return project["dependencies"], project["optional-dependencies"]


def test_every_declared_dependency_is_locked_within_its_range():
    """A dependency added to pyproject.toml but not to the locks would be resolved to whatever is
    newest on the day of a fresh install (what broke the README command once): each one, and each
    extra it asks for, has a pin in the lock, and the pinned version is inside the declared range."""
    from packaging.requirements import Requirement
    from packaging.version import Version
    runtime, extras = _declared()
    server_lock = _pins("requirements/lock.txt")
    agent_lock = _pins("requirements/agent-lock.txt")
    env = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
           "platform_system": "Linux", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "extra": ""}
    problems = []
    for lock_name, lock, declared in (("lock.txt", server_lock, runtime + extras["server"] + extras["test"]),
                                      ("agent-lock.txt", agent_lock, runtime)):
        for text in declared:
            req = Requirement(text)
            if lock is server_lock and req.marker is not None and not req.marker.evaluate(env):
                continue
            name = req.name.lower().replace("_", "-")
            pins = lock.get(name)
            if not pins:
                problems.append("%s: %s is not pinned" % (lock_name, name))
                continue
            for version, _marker in pins:
                if not req.specifier.contains(Version(version), prereleases=True):
                    problems.append("%s: %s==%s is outside %s" % (lock_name, name, version, req.specifier))
            for extra in req.extras:
                if "%s-%s" % (name, extra) not in lock and not any(
                        k.startswith(name + "-") for k in lock):
                    problems.append("%s: %s[%s] brings nothing pinned" % (lock_name, name, extra))
    assert problems == [], "re-run `bash requirements/refresh`: %s" % "; ".join(problems)


def test_the_server_extra_has_bounds_where_a_major_release_would_break_us():
    """Users of `pip install 'xcscan[server]'` get versions known to work: every server dependency
    has a lower bound, and the frameworks whose next major release changes their API an upper one."""
    from packaging.requirements import Requirement
    _runtime, extras = _declared()
    reqs = dict((Requirement(t).name.lower(), Requirement(t)) for t in extras["server"])
    assert all(any(s.operator in (">=", "==", "~=") for s in r.specifier) for r in reqs.values()), reqs
    for name in ("fastapi", "sqlalchemy", "alembic", "psycopg", "jinja2", "uvicorn"):
        assert any(s.operator == "<" for s in reqs[name].specifier), name
