"""The collection context handed to every collector.

It bundles the root-aware file layer, whether the target is the live host,
the shared error list and a bounded command runner. Collectors never raise:
they record problems with :meth:`Context.error` and return ``None`` for facts
they could not establish.
"""
from __future__ import absolute_import

import os
import subprocess
import time

from scanner.rootfs import RootFS

DEFAULT_COMMAND_TIMEOUT = 10.0


class Context(object):
    def __init__(self, root="/", live=None, command_timeout=DEFAULT_COMMAND_TIMEOUT, options=None):
        root = os.path.abspath(root or "/")
        self.errors = []
        self.fs = RootFS(root, errors=self.errors)
        self.root = root
        # A scan of "/" is live: processes, sockets and commands describe the target.
        self.live = (root == "/") if live is None else bool(live)
        self.command_timeout = command_timeout
        self.options = dict(options or {})
        self.collector = None
        self.deadline = None  # absolute monotonic time for the running collector, or None

    def set_collector(self, name):
        self.collector = name
        self.fs.set_collector(name)

    def error(self, path, message, collector=None):
        self.errors.append({
            "collector": collector or self.collector or "scan",
            "path": path,
            "message": message,
        })

    def time_left(self):
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()

    def run(self, argv, timeout=None, input_text=None, env=None, ok_codes=(0,), report=True):
        """Run a command on the live host; return its stdout (str) or None.

        Never used for an offline root (the command would describe the scanning
        host, not the image). Missing binaries are silent (a fact is unknown);
        time-outs and failures are recorded in ``facts.errors``.
        """
        if not self.live:
            return None
        limit = timeout or self.command_timeout
        left = self.time_left()
        if left is not None:
            limit = max(0.1, min(limit, left))
        run_env = dict(os.environ)
        run_env.update({"LC_ALL": "C", "LANG": "C"})
        if env:
            run_env.update(env)
        cmd = " ".join(argv)
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run_env, close_fds=True)
        except OSError as exc:
            if report and getattr(exc, "errno", None) not in (2,):  # ENOENT: tool not installed
                self.error(cmd, "cannot run: %s" % (exc.strerror or exc,))
            return None
        try:
            out, err = proc.communicate(
                input=input_text.encode("utf-8") if input_text is not None else None, timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            if report:
                self.error(cmd, "timed out after %.1f s" % limit)
            return None
        if proc.returncode not in ok_codes:
            if report:
                msg = err.decode("utf-8", "replace").strip().splitlines()
                self.error(cmd, "exit status %d%s" % (proc.returncode, (": " + msg[-1]) if msg else ""))
            return None
        return out.decode("utf-8", "replace")
