"""`xcscan agent enroll`: make the key, register it with the aggregator, write agent.yaml."""
from __future__ import absolute_import

import base64
import os

from scanner.agent import config as agent_config
from scanner.agent import keys
from scanner.errors import XcscanError


def _identity(root):
    """(hostname, machine_id) of the scan target, exactly as reports will carry them. An image
    without /etc/hostname (many container and golden images) is still a host to the aggregator: it
    is named by its other configuration, or by its machine id, or by the image directory."""
    from scanner.collect import host
    from scanner.context import Context
    ctx = Context(root=root or "/")
    facts = host.collect(ctx)
    hostname, machine_id = facts.get("hostname"), facts.get("machine_id")
    if not hostname or not hostname.strip():
        hostname = _image_name(ctx, root, machine_id)
    return hostname, machine_id


def _image_name(ctx, root, machine_id):
    import re
    network = ctx.fs.read_text("/etc/sysconfig/network", max_bytes=64 * 1024, report=False) or ""
    m = re.search(r"^\s*HOSTNAME=[\"']?([A-Za-z0-9][A-Za-z0-9.-]{0,252})", network, re.M)
    if m:
        return m.group(1)
    if machine_id:
        return "image-%s" % machine_id[:12]
    base = os.path.basename(os.path.abspath(root or "/").rstrip("/")) or "root"
    return "image-%s" % re.sub(r"[^A-Za-z0-9.-]+", "-", base)[:60]


def _install_ca(ca_file, config_dir):
    try:
        with open(ca_file, "rb") as fh:
            data = fh.read(1024 * 1024)
    except (IOError, OSError) as exc:
        raise XcscanError("cannot read the CA certificate: %s" % (exc.strerror or exc), path=ca_file)
    if os.path.abspath(ca_file) == os.path.join(config_dir, "ca.pem"):
        _check_pem(data, ca_file)
        return "ca.pem"
    return _write_ca(data, config_dir, ca_file)


def _check_pem(data, where):
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise XcscanError("not a PEM certificate", path=where,
                          hint="give the CA file made by `xcscan server init` (ca.pem)")


def _write_ca(data, config_dir, where):
    """Install the CA certificate ``data`` as config_dir/ca.pem (atomically); its name for agent.yaml."""
    _check_pem(data, where)
    dest = os.path.join(config_dir, "ca.pem")
    tmp = dest + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.rename(tmp, dest)
    return "ca.pem"


def _existing_config(config_path, force):
    """(absolute config path, the existing AgentConfig or None); refuses to enroll twice without --force."""
    config_path = os.path.abspath(config_path or agent_config.default_path())
    existing = None
    if os.path.exists(config_path):
        existing = agent_config.load(config_path, must_be_enrolled=False)
        if existing.enrolled() and not force:
            raise XcscanError("this agent is already enrolled as host %s with %s" % (
                existing.host_id, existing.server), path=config_path,
                hint="pass --force to enroll again (the host gets a new id on the server)")
    return config_path, existing


def _check_root(settings, existing):
    """An image root with no OS (not mounted yet) is refused before anything is written: the host
    would be enrolled under the empty mount point's name."""
    from scanner.target import require_os_for_agent
    root = (settings or {}).get("root")
    if root is None and existing is not None:
        root = existing.values.get("root")
    require_os_for_agent(root)


def enroll(server, token, ca_file=None, fingerprint=None, config_path=None, settings=None, force=False):
    """Enroll this host; return (config values, key created?)."""
    from scanner.agent.client import Client, TransportError, TrustError
    config_path, existing = _existing_config(config_path, force)
    if not ca_file and not fingerprint:
        raise XcscanError("give --ca FILE or --fingerprint SHA256 so the agent can authenticate the server")
    _check_root(settings, existing)
    if fingerprint:
        fingerprint = agent_config.normalize_fingerprint(fingerprint)
    config_dir = os.path.dirname(config_path)
    if not os.path.isdir(config_dir):
        try:
            os.makedirs(config_dir, 0o755)
        except OSError as exc:
            raise XcscanError("cannot create the configuration directory: %s" % (exc.strerror or exc),
                              path=config_dir, hint="run as root or pass --config PATH")
    values = dict(existing.values) if existing else dict(agent_config.DEFAULTS)
    for key, value in (settings or {}).items():
        if value is not None:
            values[key] = value
    values.update(server=server.rstrip("/"), fingerprint=fingerprint,
                  ca_file=_install_ca(ca_file, config_dir) if ca_file else None)
    values = agent_config.validate(dict((k, v) for k, v in values.items() if v is not None), config_path)
    cfg = agent_config.AgentConfig(values, config_path)
    seed, created = keys.load_or_create_key(cfg.key_path)
    hostname, machine_id = _identity(values.get("root"))
    client = Client(server, ca_file=cfg.ca_path, fingerprint=fingerprint, timeout=values["timeout"])
    public = base64.b64encode(keys.public_key(seed)).decode("ascii")
    try:
        resp = client.enroll(token, hostname, machine_id, public)
    except TrustError as exc:
        raise XcscanError("enrollment refused: %s" % exc, hint="check --ca / --fingerprint")
    except TransportError as exc:
        raise XcscanError("cannot reach the server: %s" % exc, hint="check the URL, the network and the firewall")
    if resp.status not in (200, 201) or not isinstance(resp.json, dict) or not resp.json.get("host_id"):
        what = {401: "unknown enrollment token", 403: "enrollment token expired or used up"}.get(
            resp.status, "enrollment failed")
        raise XcscanError("%s (HTTP %d: %s)" % (what, resp.status, resp.message),
                          hint="ask the aggregator admin for a token: xcscan server token create --org PATH")
    values["host_id"] = str(resp.json["host_id"])
    values["org"] = resp.json.get("org")
    agent_config.save(config_path, values)
    # Create the spool and state directories now: the systemd unit only grants write access
    # to them (ProtectSystem=strict) and a permission problem is best seen at enrollment.
    from scanner.agent.runner import _ensure_dir
    from scanner.agent.spool import Spool
    _ensure_dir(cfg.state_path, "state_dir")
    Spool(cfg.spool_path).ensure()
    return values, created


# --- offline enrollment (air-gapped networks, docs/agent.md) ------------------------------------------
ENROLLMENT_FORMAT = "xcscan-enrollment/1"
REQUEST_NAME = "enrollment-request.json"


def read_enrollment_bundle(path):
    import json
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read(1024 * 1024).decode("utf-8"))
    except (IOError, OSError) as exc:
        raise XcscanError("cannot read the enrollment bundle: %s" % (exc.strerror or exc), path=path)
    except (ValueError, UnicodeDecodeError):
        raise XcscanError("the enrollment bundle is not JSON", path=path)
    if not isinstance(doc, dict) or doc.get("format") != ENROLLMENT_FORMAT:
        raise XcscanError("not an enrollment bundle", path=path,
                          hint="the aggregator admin makes one: xcscan server token create --org PATH "
                               "--offline-bundle FILE --url URL")
    for key in ("server", "token", "org", "ca_pem"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise XcscanError("the enrollment bundle lacks %r" % key, path=path)
    return doc


def enroll_offline(bundle_path, config_path=None, settings=None, force=False):
    """Enroll without a connection: make the key and a host id here, write agent.yaml, and leave a
    signed enrollment request in the state directory; `agent export` carries it to the aggregator,
    whose import registers the host before its reports. Return (config values, key created?)."""
    import json
    import time
    import uuid
    doc = read_enrollment_bundle(bundle_path)
    config_path, existing = _existing_config(config_path, force)
    _check_root(settings, existing)
    config_dir = os.path.dirname(config_path)
    if not os.path.isdir(config_dir):
        os.makedirs(config_dir, 0o755)
    ca_name = _write_ca(doc["ca_pem"].encode("utf-8"), config_dir, bundle_path)
    values = dict(existing.values) if existing else dict(agent_config.DEFAULTS)
    for key, value in (settings or {}).items():
        if value is not None:
            values[key] = value
    values.update(server=doc["server"].rstrip("/"), ca_file=ca_name, fingerprint=None)
    values = agent_config.validate(dict((k, v) for k, v in values.items() if v is not None), config_path)
    cfg = agent_config.AgentConfig(values, config_path)
    seed, created = keys.load_or_create_key(cfg.key_path)
    hostname, machine_id = _identity(values.get("root"))
    host_id = str(uuid.uuid4())
    body = json.dumps({"hostname": hostname, "machine_id": machine_id, "token": doc["token"],
                       "public_key": base64.b64encode(keys.public_key(seed)).decode("ascii")},
                      sort_keys=True).encode("utf-8")
    ts = int(time.time())
    request = {"format": "xcscan-enroll-request/1", "host_id": host_id, "timestamp": ts,
               "body": body.decode("utf-8"), "signature": keys.sign_report(seed, host_id, ts, body)}
    from scanner.agent.runner import _ensure_dir
    from scanner.agent.spool import Spool
    _ensure_dir(cfg.state_path, "state_dir")
    Spool(cfg.spool_path).ensure()
    req_path = os.path.join(cfg.state_path, REQUEST_NAME)
    with open(req_path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(request, fh)
    os.chmod(req_path + ".tmp", 0o600)
    os.replace(req_path + ".tmp", req_path)
    values["host_id"] = host_id
    values["org"] = doc["org"]
    agent_config.save(config_path, values)
    return values, created


def pending_request(state_dir):
    """The signed enrollment request waiting to be carried to the aggregator, or None."""
    import json
    try:
        with open(os.path.join(state_dir, REQUEST_NAME), encoding="utf-8") as fh:
            return json.load(fh)
    except (IOError, OSError, ValueError):
        return None


def request_done(state_dir):
    try:
        os.unlink(os.path.join(state_dir, REQUEST_NAME))
    except OSError:
        pass

