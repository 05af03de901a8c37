"""The agent configuration file (/etc/xcscan/agent.yaml by default).

The path comes from ``--config``, else ``$XCSCAN_AGENT_CONFIG``, else
/etc/xcscan/agent.yaml. ``xcscan agent enroll`` writes it; an operator may
edit the tunables (see agents/agent.yaml.example). Relative paths inside it
are relative to the directory of the file.
"""
from __future__ import absolute_import

import os

from scanner.errors import XcscanError

DEFAULT_PATH = "/etc/xcscan/agent.yaml"

# key -> (default, type, description used in errors)
DEFAULTS = {
    "server": None,
    "host_id": None,
    "org": None,
    "key_file": "agent.key",
    "ca_file": None,
    "fingerprint": None,
    "spool_dir": "/var/spool/xcscan",
    "state_dir": "/var/lib/xcscan",
    "profile": "all",
    "root": "/",
    "splay": 900,                       # seconds; random delay before a scheduled scan
    "spool_max_bytes": 64 * 1024 * 1024,
    "spool_max_reports": 500,
    "timeout": 30,                      # seconds per HTTP request
    "retries": 3,                       # upload attempts per run beyond the first, with backoff
    "backoff": 5,                       # seconds, doubled per attempt, with jitter
    "backoff_max": 120,
    "scan_budget": 900,                 # seconds for the whole scan
    "collector_budget": 20,             # seconds per collector (engine default)
    "memory_limit_mb": 1024,            # address-space limit for the run (0: none)
    "nice": 10,
    "ionice": "idle",                   # idle | best-effort | none
    "syslog": False,
    "gzip": True,
}
_INTS = ("splay", "spool_max_bytes", "spool_max_reports", "timeout", "retries", "backoff",
         "backoff_max", "scan_budget", "collector_budget", "memory_limit_mb", "nice")
_PATHS = ("key_file", "ca_file", "spool_dir", "state_dir")


def default_path(environ=None):
    environ = os.environ if environ is None else environ
    return environ.get("XCSCAN_AGENT_CONFIG") or DEFAULT_PATH


def normalize_fingerprint(value):
    """'AB:CD:..' / 'sha256:abcd..' / 'abcd..' -> 64 lowercase hex digits, or raise."""
    text = str(value).strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:"):]
    text = text.replace(":", "").replace(" ", "")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise XcscanError("a certificate fingerprint must be 64 hex digits (SHA-256), got %r" % value,
                          hint="print it on the server with `openssl x509 -noout -fingerprint -sha256 -in cert.pem`")
    return text


class AgentConfig(object):
    def __init__(self, values, path):
        self.path = os.path.abspath(path)
        self.values = values

    def __getattr__(self, name):
        values = self.__dict__.get("values")
        if values is not None and name in DEFAULTS:
            return values.get(name)
        raise AttributeError(name)

    def resolve(self, value):
        if value is None:
            return None
        return value if os.path.isabs(value) else os.path.join(os.path.dirname(self.path), value)

    @property
    def key_path(self):
        return self.resolve(self.values["key_file"])

    @property
    def ca_path(self):
        return self.resolve(self.values.get("ca_file"))

    @property
    def spool_path(self):
        return self.resolve(self.values["spool_dir"])

    @property
    def state_path(self):
        return self.resolve(self.values["state_dir"])

    def enrolled(self):
        return bool(self.values.get("server") and self.values.get("host_id"))


def validate(raw, path):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise XcscanError("the agent configuration must be a YAML mapping", path=path)
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise XcscanError("unknown setting(s): %s" % ", ".join(unknown), path=path,
                          hint="known settings: %s" % ", ".join(sorted(DEFAULTS)))
    values = dict(DEFAULTS)
    values.update(raw)
    for key in _INTS:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise XcscanError("%s must be a whole number >= 0, got %r" % (key, value), path=path)
    for key in ("syslog", "gzip"):
        if not isinstance(values[key], bool):
            raise XcscanError("%s must be true or false, got %r" % (key, values[key]), path=path)
    if values["ionice"] not in ("idle", "best-effort", "none"):
        raise XcscanError("ionice must be idle, best-effort or none, got %r" % values["ionice"], path=path)
    server = values.get("server")
    if server is not None and not str(server).startswith("https://"):
        raise XcscanError("server must be an https:// URL, got %r" % server, path=path,
                          hint="the agent only talks TLS to the aggregator")
    if values.get("fingerprint"):
        values["fingerprint"] = normalize_fingerprint(values["fingerprint"])
    for key in _PATHS:
        if values.get(key) is not None and not isinstance(values[key], str):
            raise XcscanError("%s must be a path string" % key, path=path)
    return values


def load(path=None, must_be_enrolled=True):
    path = path or default_path()
    if not os.path.exists(path):
        if must_be_enrolled:
            raise XcscanError("no agent configuration", path=path,
                              hint="enroll first: xcscan agent enroll --server URL --token T --ca CA.pem")
        return AgentConfig(validate({}, path), path)
    from scanner.yamlio import load_yaml_file
    cfg = AgentConfig(validate(load_yaml_file(path), path), path)
    if must_be_enrolled and not cfg.enrolled():
        raise XcscanError("the agent is not enrolled (server or host_id missing)", path=path,
                          hint="run xcscan agent enroll --server URL --token T")
    if must_be_enrolled and not (cfg.values.get("ca_file") or cfg.values.get("fingerprint")):
        raise XcscanError("neither ca_file nor fingerprint is set: the server cannot be authenticated",
                          path=path, hint="re-enroll with --ca FILE or --fingerprint SHA256")
    return cfg


def save(path, values):
    """Write the configuration atomically (temp, fsync, rename), mode 0640."""
    import yaml
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    keep = dict((k, v) for k, v in values.items() if k in DEFAULTS and v is not None)
    text = ("# xcscan agent configuration, written by `xcscan agent enroll`.\n"
            "# Tunables are documented in agents/agent.yaml.example and docs/agent.md.\n")
    text += yaml.safe_dump(keep, default_flow_style=False, sort_keys=True, allow_unicode=True)
    tmp = os.path.join(directory, ".%s.tmp%d" % (os.path.basename(path), os.getpid()))
    old = os.umask(0o027)
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o640)
        os.rename(tmp, path)
    except (IOError, OSError) as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise XcscanError("cannot write the agent configuration: %s" % (exc.strerror or exc), path=path)
    finally:
        os.umask(old)
    from scanner.fsutil import fsync_dir
    fsync_dir(directory)
