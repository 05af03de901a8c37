"""`xcscan agent enroll`: make the key, register it with the aggregator, write agent.yaml."""
from __future__ import absolute_import

import base64
import os
import shutil

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
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise XcscanError("not a PEM certificate", path=ca_file,
                          hint="give the CA file made by `xcscan server init` (ca.pem)")
    dest = os.path.join(config_dir, "ca.pem")
    if os.path.abspath(ca_file) != dest:
        tmp = dest + ".tmp%d" % os.getpid()
        shutil.copyfile(ca_file, tmp)
        os.chmod(tmp, 0o644)
        os.rename(tmp, dest)
    return "ca.pem"


def enroll(server, token, ca_file=None, fingerprint=None, config_path=None, settings=None, force=False):
    """Enroll this host; return (config values, key created?)."""
    from scanner.agent.client import Client, TransportError, TrustError
    config_path = os.path.abspath(config_path or agent_config.default_path())
    existing = None
    if os.path.exists(config_path):
        existing = agent_config.load(config_path, must_be_enrolled=False)
        if existing.enrolled() and not force:
            raise XcscanError("this agent is already enrolled as host %s with %s" % (
                existing.host_id, existing.server), path=config_path,
                hint="pass --force to enroll again (the host gets a new id on the server)")
    if not ca_file and not fingerprint:
        raise XcscanError("give --ca FILE or --fingerprint SHA256 so the agent can authenticate the server")
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
