"""Guarded apply (--apply): validate, lock, back up, write atomically, run, roll back on failure.

Every run has a directory (``<backup-dir>/<UTC time>-<pid>``) holding ``manifest.json`` (the
journal: each change with its state before and after, written before the change is made),
``files/N`` (the original bytes), ``rollback.sh`` (POSIX shell, restores without Python) and
``log.txt``. ``rollback(run_dir)`` restores the original bytes, modes, owners, SELinux labels and
modification times, newest change first.
"""
from __future__ import absolute_import

import datetime
import errno
import json
import os
import subprocess

from scanner.errors import XcscanError
from scanner.remediate.planner import AUDITD_RELOAD

SELINUX_XATTR = "security.selinux"


class FixRefused(XcscanError):
    """Validation failed: nothing was changed."""


class FixFailed(XcscanError):
    """A step failed; what was done has been rolled back."""


def _host(root, path):
    return path if root == "/" else os.path.join(root, path.lstrip("/"))


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _get_label(host):
    try:
        return os.getxattr(host, SELINUX_XATTR, follow_symlinks=False).decode("ascii", "replace").rstrip("\0")
    except (OSError, AttributeError):
        return None


def _set_label(host, label):
    if not label:
        return
    try:
        os.setxattr(host, SELINUX_XATTR, label.encode("ascii") + b"\0", follow_symlinks=False)
    except (OSError, AttributeError):
        pass


def _chown(host, uid, gid, follow=True):
    try:
        os.chown(host, uid, gid, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno != errno.EPERM or os.geteuid() == 0:
            raise
        st = os.lstat(host)
        if (st.st_uid, st.st_gid) != (uid, gid):  # unprivileged: only a no-op chown is fine
            raise


def write_file(host, data, mode, uid, gid, label=None, times=None):
    """Atomic: temp file in the same directory, mode/owner/label set, fsync, rename, fsync dir."""
    directory = os.path.dirname(host)
    tmp = os.path.join(directory, ".%s.xcscan-%d" % (os.path.basename(host), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            _chown(tmp, uid, gid)
            os.chmod(tmp, mode)  # after chown, which clears set-id bits
            _set_label(tmp, label)
            os.fsync(fh.fileno())
        if times:
            os.utime(tmp, ns=tuple(times))
        os.rename(tmp, host)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def set_state(host, state, label=None, times=None, data=None):
    """Make ``host`` have ``state`` (a State or its JSON form); ``data`` overrides file contents."""
    kind = state["kind"] if isinstance(state, dict) else state.kind
    mode = state["mode"] if isinstance(state, dict) else state.mode
    if isinstance(mode, str):
        mode = int(mode, 8)
    uid = state["uid"] if isinstance(state, dict) else state.uid
    gid = state["gid"] if isinstance(state, dict) else state.gid
    try:
        cur = os.lstat(host)
    except OSError:
        cur = None
    import stat as stat_mod
    if kind is None:
        if cur is None:
            return
        if stat_mod.S_ISDIR(cur.st_mode):
            os.rmdir(host)
        else:
            os.unlink(host)
        _fsync_dir(os.path.dirname(host))
    elif kind == "file":
        if data is None:
            data = state.data
        write_file(host, data, mode, uid, gid, label or (_get_label(host) if cur is not None else None), times)
    elif kind == "dir":
        if cur is None:
            os.mkdir(host, mode)
            _chown(host, uid, gid)
        else:
            _chown(host, uid, gid)
        os.chmod(host, mode)
        if times:
            os.utime(host, ns=tuple(times))
    elif kind == "link":
        target = state["target"] if isinstance(state, dict) else state.data
        tmp = host + ".xcscan-%d" % os.getpid()
        os.symlink(target, tmp)
        _chown(tmp, uid, gid, follow=False)
        os.rename(tmp, host)
        _fsync_dir(os.path.dirname(host))


class Run(object):
    def __init__(self, run_dir, root):
        self.dir, self.root = run_dir, root
        self.entries = []
        self.log_fh = open(os.path.join(run_dir, "log.txt"), "a")

    def log(self, message):
        stamp = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
        self.log_fh.write("%s %s\n" % (stamp, message))
        self.log_fh.flush()

    def save(self):
        path = os.path.join(self.dir, "manifest.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"root": self.root, "entries": self.entries}, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)

    def backup(self, path, before, rule_id):
        host = _host(self.root, path)
        entry = {"path": path, "rule": rule_id, "before": before.to_json(), "status": "pending",
                 "backup": None, "label": None, "times": None}
        if before.kind is not None:
            st = os.lstat(host)
            entry["times"] = [st.st_atime_ns, st.st_mtime_ns]
            entry["label"] = _get_label(host)
        if before.kind == "file":
            name = "files/%d" % len(self.entries)
            with open(os.path.join(self.dir, name), "wb") as fh:
                fh.write(before.data)
                fh.flush()
                os.fsync(fh.fileno())
            entry["backup"] = name
        self.entries.append(entry)
        self.save()
        return entry

    def close(self):
        self.log_fh.close()


def new_run_dir(backup_dir):
    """A new run directory named by time and pid (name order = run order); a second run in the same
    second and process (a script calling fix twice) gets a -2, -3 … suffix, never another run's backups."""
    stamp = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    if not os.path.isdir(backup_dir):
        os.makedirs(backup_dir, 0o700)
    base = os.path.join(backup_dir, "%s-%d" % (stamp, os.getpid()))
    for n in range(1, 1000):
        run_dir = base if n == 1 else "%s-%d" % (base, n)
        try:
            os.mkdir(run_dir, 0o700)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                continue
            raise
        os.mkdir(os.path.join(run_dir, "files"), 0o700)
        return run_dir
    raise OSError(errno.EEXIST, "no free run directory", base)


def apply_plan(plan, backup_dir, lock_path=None, run_command=None):
    """Apply ``plan`` (validated by the caller); return the run directory. Raises FixFailed after
    rolling back when a step fails."""
    from scanner.agent.lock import RunLock
    from scanner.remediate.rollback_script import write_rollback_script
    run_command = run_command or _run
    lock = RunLock(lock_path) if lock_path else None
    if lock is not None:
        if not os.path.isdir(os.path.dirname(lock_path)):
            os.makedirs(os.path.dirname(lock_path), 0o755)
        lock.acquire()
    try:
        run_dir = new_run_dir(backup_dir)
        run = Run(run_dir, plan.root)
        try:
            run.log("apply root=%s live=%s rules=%s" % (plan.root, plan.live,
                                                       ",".join(rp.rule_id for rp in plan.applicable())))
            run.save()
            try:
                rules_of = {}
                for rp in plan.applicable():
                    for path, _b, _a in rp.changes:
                        rules_of.setdefault(path, []).append(rp.rule_id)
                for path, before, after in plan.changes():
                    rules = ",".join(rules_of.get(path) or [])
                    entry = run.backup(path, before, rules)
                    set_state(_host(plan.root, path), after, label=entry["label"])
                    entry["status"] = "done"
                    run.save()
                    run.log("%s %s: %s -> %s" % (rules, path, _desc(before), _desc(after)))
                write_rollback_script(run)
                if plan.live:
                    _live_steps(plan, run, run_command)
            except BaseException as exc:
                run.log("failed: %s; rolling back" % exc)
                failed = rollback_entries(run.root, run.dir, run.entries, run.log)
                run.save()
                done = _not_restored(failed, run_dir) if failed else "; every change was rolled back"
                if isinstance(exc, XcscanError):
                    raise FixFailed("%s%s" % (exc.message, done), path=exc.path, hint="the log is in %s" % run_dir)
                if isinstance(exc, (OSError, subprocess.SubprocessError)):
                    raise FixFailed("%s%s" % (exc, done), hint="the log is in %s" % run_dir)
                raise
            run.log("done")
        finally:
            run.close()
        return run_dir
    finally:
        if lock is not None:
            lock.release()


def _desc(st):
    if st.kind is None:
        return "absent"
    if st.kind == "link":
        return "link %s" % st.data
    return "%s %04o %d:%d" % (st.kind, st.mode, st.uid, st.gid)


def _run(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.communicate()[0]
    return proc.returncode, out.decode("utf-8", "replace")


def _live_steps(plan, run, run_command):
    """Live host only: sshd -t after the sshd files are written, then the commands."""
    if plan.touches_sshd():
        from scanner.remediate.validate import sshd_binary
        binary = sshd_binary("/")
        if binary:
            code, out = run_command([binary, "-t"])
            run.log("%s -t -> %d %s" % (binary, code, out.strip()))
            if code != 0:
                raise XcscanError("sshd -t rejects the new configuration: %s" % out.strip())
    seen = set()
    for rp in plan.applicable():
        for argv in rp.commands:
            key = tuple(argv)
            if key in seen:
                continue
            seen.add(key)
            try:
                code, out = run_command(argv)
            except OSError as exc:
                code, out = 127, str(exc)
            run.log("$ %s -> %d %s" % (" ".join(argv), code, out.strip()))
            if code == 1 and tuple(argv) == AUDITD_RELOAD:
                continue  # no auditd running: its next start reads the file (planner.AUDITD_RELOAD)
            if code != 0 and argv[:2] != ["systemctl", "try-reload-or-restart"]:
                raise XcscanError("%s failed (exit %d): %s" % (" ".join(argv), code, out.strip()[:300]))


def _already(host, before, data):
    """``host`` is in the journal's ``before`` state (a pending change that never happened)."""
    import stat as stat_mod
    try:
        st = os.lstat(host)
    except OSError:
        return before["kind"] is None
    kind, mode = before["kind"], before["mode"]
    mode = int(mode, 8) if isinstance(mode, str) else mode
    if kind is None or (st.st_uid, st.st_gid) != (before["uid"], before["gid"]):
        return False
    if kind == "link":
        return stat_mod.S_ISLNK(st.st_mode) and os.readlink(host) == before.get("target")
    if stat_mod.S_IMODE(st.st_mode) != mode:
        return False
    if kind == "dir":
        return stat_mod.S_ISDIR(st.st_mode)
    if not stat_mod.S_ISREG(st.st_mode):
        return False
    with open(host, "rb") as fh:
        return fh.read() == data


def rollback_entries(root, run_dir, entries, log=None):
    """Restore, newest first, every change that was made or may have been (pending); a pending one
    that never happened is left alone. One that cannot be restored does not stop the others: returns
    [(path, error)] of those."""
    failed = []
    for entry in reversed(entries):
        if entry["status"] not in ("done", "pending"):
            continue
        host = _host(root, entry["path"])
        data = None
        try:
            if entry["backup"]:
                with open(os.path.join(run_dir, entry["backup"]), "rb") as fh:
                    data = fh.read()
            if entry["status"] == "pending" and _already(host, entry["before"], data):
                entry["status"] = "not changed"
                continue
            set_state(host, entry["before"], label=entry.get("label"), times=entry.get("times"), data=data)
        except (OSError, IOError) as exc:
            failed.append((entry["path"], str(exc)))
            if log:
                log("cannot restore %s: %s" % (entry["path"], exc))
            continue
        entry["status"] = "rolled back"
        if log:
            log("restored %s" % entry["path"])
    return failed


def _not_restored(failed, run_dir):
    return "; NOT restored: %s (the originals are in %s/files, see manifest.json)" % (
        ", ".join("%s (%s)" % f for f in failed), run_dir)


def rollback(run_dir, lock_path=None):
    """Restore everything a run changed; returns the number of restored paths."""
    path = os.path.join(run_dir, "manifest.json")
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (IOError, OSError, ValueError) as exc:
        raise XcscanError("cannot read the run's manifest: %s" % exc, path=path,
                          hint="give the directory that `xcscan fix --apply` printed")
    from scanner.agent.lock import RunLock
    lock = RunLock(lock_path) if lock_path else None
    if lock is not None:
        lock.acquire()
    try:
        run = Run(run_dir, doc["root"])
        run.entries = doc["entries"]
        try:
            failed = rollback_entries(run.root, run_dir, run.entries, run.log)
        finally:
            run.save()
            run.close()
        if failed:
            raise XcscanError("rollback incomplete" + _not_restored(failed, run_dir), path=run_dir)
        return len([e for e in run.entries if e["status"] == "rolled back"])
    finally:
        if lock is not None:
            lock.release()
