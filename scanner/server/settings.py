"""Aggregator settings: data directory layout and limits."""
from __future__ import annotations

import dataclasses
import json
import os

CONFIG_NAME = "server.json"
MiB = 1024 * 1024


@dataclasses.dataclass
class Settings:
    data_dir: str
    db_url: str = ""
    max_body: int = 16 * MiB  # compressed and decompressed report body
    max_past: int = 14 * 86400  # oldest accepted signature timestamp (spool backlog)
    max_future: int = 300  # clock skew allowed ahead of the server
    import_max_past: int = 90 * 86400  # oldest signature timestamp in an air-gap transfer bundle
    session_ttl: int = 8 * 3600  # absolute session lifetime
    session_idle: int = 30 * 60  # a session unused this long ends (0: no idle limit)
    login_max_failures: int = 5  # failed logins per user name within login_window before a lock
    # per client address too (0: off; behind a reverse proxy every user shares one address)
    login_ip_max_failures: int = 0
    login_window: int = 15 * 60
    login_lock_seconds: int = 15 * 60
    login_rate_per_client: int = 60  # failed logins a minute from one address, refused before hashing (0: off)
    login_max_concurrent_hashes: int = 2  # Argon2id checks at once per worker (64 MiB each)
    audit_events_per_minute: int = 20  # refused reports/enrollments/locked logins audited per action and address a minute
    secure_cookies: bool = True
    # a user with approval rights may approve their own waiver request (small sites; default four-eyes)
    waiver_single_step: bool = False
    report_retention_days: int = 0  # drop stored bodies of reports older than this (0: keep all); `server prune`
    # how often the server itself applies report_retention_days (seconds; one node per run: store/jobs.py);
    # 0: never (run `xcscan server prune` from cron or a systemd timer instead)
    prune_interval: int = 86400
    # the same job first compacts the bodies stored since its last run into zstd deltas against a base body
    # per host (store/bodies.py), also while report_retention_days is 0; False: bodies stay gzip as received
    report_compaction: bool = True
    # past report_retention_days, keep only each host's last report of every UTC day and profile (the rows
    # daily roll-ups read; a host reporting once a day keeps all); False: every report's row stays
    report_daily_summaries: bool = True
    # change records (the change feed's rows, store/changes.py) stamped more than this many days ago are deleted
    # by the same job (400: a month compared with the same month a year before); 0: keep them all
    change_retention_days: int = 400
    # the change page's default view (the last 7 days) counted ahead by one node this often (seconds;
    # store/change_digest.py); the page says when, and counts live past the first page or on request.
    # 0: off (every view folds the week's change records: about 0.3 s at 10,000 hosts)
    change_digest_interval: int = 300
    # ... only while the last 7 days hold at least this many change records (fewer fold live in under ~0.1 s)
    change_digest_min_records: int = 20000
    # the working-paper summaries of hosts whose latest report or recorded verdicts changed made ahead by one
    # node this often (seconds; store/paper_summaries.py), at most paper_summary_budget seconds of work a run,
    # so that the summary by 控制点 of a subtree reads kept rows; the coverage views' rule-set digests are kept
    # ahead at the same interval and budget (store/coverage.py). 0: off (the page makes what it needs)
    paper_summary_interval: int = 60
    paper_summary_budget: int = 2
    # change feeds folded at once per worker (a live or dated change page, an API change page, a change export:
    # store/slots.py); a request waits up to fold_wait seconds for one, then is answered 503 busy
    max_concurrent_folds: int = 2
    fold_wait: int = 10
    # findings and inventory exports streamed at once per worker (each holds a database connection until its
    # client has read the last row: store/slots.py); one more is answered 503 busy at once
    max_concurrent_exports: int = 3
    export_send_timeout: int = 60  # seconds a streamed export waits for its client to take more, then ends
    pool_size: int = 10
    # Prometheus /metrics: off unless a bearer token or an allow-list of addresses/CIDRs is set
    metrics_token: str = ""
    metrics_allow: str = ""
    # connections and requests (scanner/server/connguard.py; docs/server.md "Security model")
    max_request_body: int = 64 * 1024  # every body but a report's or a bundle upload's, refused before it is parsed
    # an air-gap transfer bundle uploaded on the admin page (larger ones: xcscan server import); read only
    # from a logged-in fleet-wide admin, refused (413) beyond this before it is read; unpacked at most 2x this
    max_bundle_upload: int = 128 * MiB
    header_timeout: int = 10  # seconds to receive a request head
    body_timeout: int = 120  # seconds to receive a request body after its head
    keep_alive_timeout: int = 5  # an idle kept-alive connection is closed after this
    max_header_bytes: int = 16 * 1024  # request line and header fields (431 beyond)
    max_headers: int = 100  # header fields per request (431 beyond)
    max_connections_per_client: int = 32  # open connections from one address per worker (0: no cap)
    max_connections: int = 900  # per worker; beyond it requests are answered 503
    # reverse proxies whose X-Forwarded-For/-Proto are believed (comma-separated addresses; "" = none)
    trusted_proxies: str = ""
    # directory login (LDAP / Active Directory): {} = off; keys in docs/integrations.md, checked at start-up
    ldap: dict = dataclasses.field(default_factory=dict)
    # single sign-on (OpenID Connect): {} = off; keys in docs/integrations.md, checked at start-up
    oidc: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.data_dir = os.path.abspath(self.data_dir)
        if not self.db_url:
            self.db_url = "sqlite:///" + os.path.join(self.data_dir, "xcscan.db")

    def path(self, name):
        return os.path.join(self.data_dir, name)


def _read_config(cfg):
    from scanner.errors import DataError
    try:
        with open(cfg, encoding="utf-8") as fh:
            values = json.load(fh)
    except ValueError as exc:
        raise DataError("not valid JSON: %s" % exc, path=cfg,
                        hint="fix it, or move it away and run `xcscan server init` to write a new one")
    except OSError as exc:
        raise DataError("cannot read the server settings: %s" % exc.strerror, path=cfg)
    if not isinstance(values, dict):
        raise DataError("the settings must be a JSON object of name: value", path=cfg)
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    for key, value in values.items():
        field = fields.get(key)
        if field is None or key == "data_dir":
            raise DataError("unknown setting %r" % key, path=cfg,
                            hint="known settings: %s" % ", ".join(sorted(k for k in fields if k != "data_dir")))
        kind = {"int": int, "bool": bool, "str": str, "dict": dict}.get(field.type if isinstance(field.type, str)
                                                          else getattr(field.type, "__name__", ""))
        wrong = kind is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool)))
        if wrong or (kind is int and value < 0):
            raise DataError("setting %r must be %s, not %r" % (
                key, {int: "a whole number of at least 0", bool: "true or false", str: "a string",
                      dict: "an object of name: value"}[kind], value),
                path=cfg)
    return values


def load_settings(data_dir, db_url=None, **overrides):
    """Settings from ``data_dir/server.json`` (written by ``server init``), then overrides.
    A malformed file, an unknown setting or a value of the wrong type is a DataError naming it."""
    values = {}
    cfg = os.path.join(os.path.abspath(data_dir), CONFIG_NAME)
    if os.path.exists(cfg):
        values.update(_read_config(cfg))
    values.update({k: v for k, v in overrides.items() if v is not None})
    if db_url:
        values["db_url"] = db_url
    known = {f.name for f in dataclasses.fields(Settings)}
    return Settings(data_dir=data_dir, **{k: v for k, v in values.items() if k in known and k != "data_dir"})


def save_settings(settings):
    data = dataclasses.asdict(settings)
    data.pop("data_dir", None)
    if data["db_url"] == "sqlite:///" + settings.path("xcscan.db"):
        data["db_url"] = ""  # default: follow the data directory if it moves
    tmp = settings.path(CONFIG_NAME + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, settings.path(CONFIG_NAME))
