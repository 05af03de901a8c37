"""Database schema (SQLAlchemy Core) and engine set-up, the same for SQLite and PostgreSQL.

Storage layout, designed for the fleet queries:
- ``reports``: every accepted report, the exact signed body gzip-compressed (raw facts kept for
  re-evaluation and as evidence), plus a few scalar columns for history and trend queries.
- latest state per host, replaced when a newer report arrives: ``components`` (inventory),
  ``host_profiles`` (score and counts per profile) and ``results`` (one row per host, profile, rule).
  Overview, findings and roll-ups read only these small tables.
All times are integer unix seconds (UTC), so the two databases behave alike.
"""
from __future__ import annotations

import contextlib
import os

from sqlalchemy import (BigInteger, Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        PrimaryKeyConstraint, SmallInteger, String, Table, Text, UniqueConstraint, create_engine, event, text)

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled", Integer, nullable=False, default=0),
)

# The org subtrees a user may see and act on ("/" = the whole fleet); see store/scope.py.
# A user without rows sees nothing.
user_orgs = Table(
    "user_orgs", metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("org_path", String(512), nullable=False),
    UniqueConstraint("user_id", "org_path"),
)

sessions = Table(
    "sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("last_used", BigInteger, nullable=True),  # idle timeout (settings.session_idle)
)

# Failed logins per user name and per client address (GB/T 22239 8.1.4.1 b: limit failed logins).
# Keyed by the name as typed, whether or not such a user exists, so a lock tells nothing about
# which accounts exist.
login_throttle = Table(
    "login_throttle", metadata,
    Column("key", String(200), primary_key=True),  # "user:<name>" or "ip:<address>"
    Column("failures", Integer, nullable=False),
    Column("first_failed_at", BigInteger, nullable=False),
    Column("locked_until", BigInteger, nullable=True),
)

enroll_tokens = Table(
    "enroll_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("org_path", String(512), nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False, default=0),
    Column("expires_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("note", String(255), nullable=True),
    Column("revoked_at", BigInteger, nullable=True),  # set: enrolls nothing more (migration 0012)
    Column("revoked_by", String(64), nullable=True),
)

hosts = Table(
    "hosts", metadata,
    Column("id", String(36), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("machine_id", String(128), nullable=True),
    Column("org_path", String(512), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("token_id", Integer, nullable=True),
    Column("enrolled_at", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=True),
    Column("latest_report_id", String(36), nullable=True),
    Column("latest_collected", BigInteger, nullable=True),
    Column("os_name", String(255), nullable=True),
    Column("os_family", String(32), nullable=True),
    Column("loc_domestic", Integer, nullable=False, default=0),
    Column("loc_foreign", Integer, nullable=False, default=0),
    Column("loc_unknown", Integer, nullable=False, default=0),
    Column("loc_rate", Float, nullable=True),
    # retired (decommissioned or compromised): out of the fleet views, reports refused, history kept
    Column("retired_at", BigInteger, nullable=True),
    Column("retired_by", String(64), nullable=True),
    Column("retire_reason", String(255), nullable=True),
    # the fleet's order (org unit, hostname): the first page of findings or hosts reads a few hosts
    Index("ix_hosts_org_hostname", "org_path", "hostname", "id"),
    # a department's or unit's hosts (org_path = X OR org_path LIKE 'X/%'): PostgreSQL compares the
    # prefix by code point with this operator class whatever the collation (0033)
    Index("ix_hosts_org_prefix", "org_path", postgresql_ops={"org_path": "text_pattern_ops"}),
    # no index on last_seen (dropped in 0023): every report sets it, and an indexed column makes each
    # such update a new index entry instead of an in-place (HOT) one; the stale-host queries read the
    # whole narrow table (1-3 ms at 10,000 hosts). PostgreSQL: fillfactor 50 (0023)
    # an agentless host (no agent; scanned over SSH by a scanning station, itself an enrolled host): the
    # station's id; public_key holds the station's key, which signs this host's reports (migration 0014)
    Column("station_id", String(36), nullable=True),
    Index("ix_hosts_station", "station_id", "machine_id"),
)

reports = Table(
    "reports", metadata,
    Column("id", String(36), primary_key=True),  # the report's report_id
    Column("host_id", String(36), ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("collected_at", BigInteger, nullable=False),  # signed X-Xcscan-Timestamp
    Column("profile", String(64), nullable=True),
    Column("score", Float, nullable=True),
    Column("loc_rate", Float, nullable=True),
    Column("fail_count", Integer, nullable=True),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("body_gz", LargeBinary, nullable=False),  # the exact signed body, gzip
    Column("evaluated_gz", LargeBinary, nullable=True),  # re-evaluated document (reevaluate)
    Column("evaluated_at", BigInteger, nullable=True),
    # retention (store/retention.py): the bodies were dropped at this time; the scalars stay
    Column("pruned_at", BigInteger, nullable=True),
    # its components per category, {"<category>": [domestic, foreign, unknown]} (JSON), for the daily
    # localization history (store/rollups.py); NULL for reports stored before migration 0016
    Column("loc_cats", Text, nullable=True),
    # where the body is (store/bodies.py): 0 body_gz (gzip, as intake stored it), 1 compacted into
    # report_bases/report_bodies (body_gz empty), 2 dropped by retention (migration 0024)
    Column("body_kind", SmallInteger, nullable=False, server_default="0"),
    Index("ix_reports_host_collected", "host_id", "collected_at"),
    Index("ix_reports_collected_at", "collected_at"),
    # the bodies still to compact: a few rows, in the order the compaction walks them
    Index("ix_reports_inline", "host_id", "collected_at", postgresql_where=text("body_kind = 0"),
          sqlite_where=text("body_kind = 0")),
)

# Compacted report bodies (store/bodies.py, migration 0024). No foreign key to hosts: hosts are retired,
# never deleted. A base: the exact signed body of one report, zstd.
report_bases = Table(
    "report_bases", metadata,
    Column("report_id", String(36), primary_key=True),
    Column("host_id", String(36), nullable=False),
    Column("collected_at", BigInteger, nullable=False),
    Column("size", Integer, nullable=False),  # bytes of the body
    Column("data", LargeBinary, nullable=False),
    # NULL: data is the body whole (a root); else a zstd delta against this root base (migration 0025)
    Column("parent_id", String(36), nullable=True),
    Index("ix_report_bases_host", "host_id", "collected_at"),
    Index("ix_report_bases_parent", "parent_id"),
)

# A delta: the exact signed body of one report, zstd with its base's body as a raw-content dictionary.
# PostgreSQL: range-partitioned by collected_at, a partition a day (report_bodies_d<unix day>) and a
# default one; retention drops whole partitions (store/retention.py).
report_bodies = Table(
    "report_bodies", metadata,
    Column("report_id", String(36), nullable=False),
    Column("collected_at", BigInteger, nullable=False),
    Column("host_id", String(36), nullable=False),
    Column("base_id", String(36), nullable=False),
    Column("size", Integer, nullable=False),  # bytes of the body
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("report_id", "collected_at"),
    # no index on base_id (dropped in 0025): only retention asks which bases deltas refer to, once per run,
    # reading the few days of deltas kept; an index is 16 KB and more per daily partition
    postgresql_partition_by="RANGE (collected_at)",
)

components = Table(
    "components", metadata,
    # no foreign key (migration 0031): written only under the host row's lock, hosts are never deleted
    Column("host_id", String(36), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("category", String(32), nullable=False),
    Column("product_id", String(64), nullable=True),
    Column("name_zh", String(255), nullable=True),
    Column("name_en", String(255), nullable=True),
    Column("vendor_en", String(255), nullable=True),
    Column("vendor_zh", String(255), nullable=True),
    Column("origin", String(16), nullable=False),
    Column("version", String(255), nullable=True),
    Column("evidence", Text, nullable=True),  # JSON list
    Column("substitutes", Text, nullable=True),  # JSON list
    # digest of what the report says of the component (intake/batch.py): an unchanged one is not rewritten
    Column("row_hash", String(32), nullable=True),
    UniqueConstraint("host_id", "seq"),
    Index("ix_components_category_origin", "category", "origin"),
)

host_profiles = Table(
    "host_profiles", metadata,
    Column("host_id", String(36), ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("report_id", String(36), nullable=False),
    Column("collected_at", BigInteger, nullable=False),
    Column("score", Float, nullable=True),
    Column("score_without_waivers", Float, nullable=True),
    Column("passed", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
    Column("other", Integer, nullable=False, default=0),
    # kept with the results' waiver pointers (store/aggregates.py): how many failures central waivers
    # cover, the score with them counted as waived, and the earliest and latest of their expiries;
    # while all are in force (waived_min > now) readers use these instead of recounting the results
    Column("waived_n", Integer, nullable=False, server_default="0"),
    Column("waived_score", Float, nullable=True),
    Column("waived_min", BigInteger, nullable=True),
    Column("waived_max", BigInteger, nullable=True),
    # severity weights (scanner/engine/evaluator.py WEIGHTS) of its failures and of those covered
    # by central waivers: the worst hosts (queries.worst_hosts) without reading the results
    Column("fail_weight", Integer, nullable=False, server_default="0"),
    Column("waived_weight", Integer, nullable=False, server_default="0"),
    UniqueConstraint("host_id", "profile"),
    # the few profiles whose covering waivers partly expired (queries.waiver_corrections)
    Index("ix_host_profiles_waived_min", "waived_min", postgresql_where=text("waived_n > 0"),
          sqlite_where=text("waived_n > 0")),
)

results = Table(
    "results", metadata,
    # no foreign key (migration 0031): written only under the host row's lock, hosts are never deleted
    Column("host_id", String(36), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("title_zh", String(512), nullable=True),
    Column("title_en", String(512), nullable=True),
    Column("category", String(32), nullable=True),
    Column("severity", String(16), nullable=True),
    Column("status", String(16), nullable=False),  # as reported by the agent
    Column("actual", Text, nullable=True),  # JSON
    Column("expected", Text, nullable=True),  # JSON
    Column("evidence", Text, nullable=True),  # JSON
    Column("waiver_id", Integer, nullable=True),  # central waiver currently covering a failure
    Column("waiver_until", BigInteger, nullable=True),
    # digest of what the agent reported (intake/batch.py): an unchanged result is not rewritten
    Column("row_hash", String(32), nullable=True),
    UniqueConstraint("host_id", "profile", "rule_id"),
    # a rule's rows (the rule page). No index holds status (0027): a report changing a result's
    # status then rewrites the row in place (HOT) on PostgreSQL; the pages count from the maintained
    # aggregates and reach a status's rows through a rule or a host
    Index("ix_results_rule", "rule_id", "host_id"),
    # only the rows a waiver covers (0028): every query on it compares waiver_until with a time
    Index("ix_results_waiver_until", "waiver_until", postgresql_where=text("waiver_until IS NOT NULL"),
          sqlite_where=text("waiver_until IS NOT NULL")),
    # a host's results of one severity: the findings page sorted by severity walks the hosts in order
    # and probes each for one severity (queries._buckets)
    Index("ix_results_host_severity", "host_id", "severity"),
)

# Maintained aggregates of the latest results (store/aggregates.py): updated in the transaction of
# every write of results rows, so fleet pages sum a few thousand rows instead of counting millions.
# NULL severity/category are '' and "no waiver" is waiver_until 0 here (keys of an upsert).
result_counts = Table(
    "result_counts", metadata,
    Column("org_path", String(512), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("category", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # as reported
    Column("waiver_until", BigInteger, nullable=False),
    Column("n", Integer, nullable=False),  # latest result rows
    UniqueConstraint("org_path", "profile", "rule_id", "severity", "category", "status", "waiver_until",
                     name="uq_result_counts_key"),
    Index("ix_result_counts_rule", "rule_id"),  # one rule's hosts per status (the rule page; migration 0021)
)

# Latest inventory components per org unit, category and origin (store/aggregates.py)
component_counts = Table(
    "component_counts", metadata,
    Column("org_path", String(512), nullable=False),
    Column("category", String(32), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("n", Integer, nullable=False),
    UniqueConstraint("org_path", "category", "origin"),
)

# Live hosts per org unit: how many, their components by origin, the sum and count of their
# localization rates (hosts with a report) (store/aggregates.py)
org_hosts = Table(
    "org_hosts", metadata,
    Column("org_path", String(512), primary_key=True),
    Column("hosts", Integer, nullable=False),
    Column("loc_domestic", Integer, nullable=False),
    Column("loc_foreign", Integer, nullable=False),
    Column("loc_unknown", Integer, nullable=False),
    Column("loc_sum", Float, nullable=False),
    Column("loc_n", Integer, nullable=False),
)

# Live host profiles per org unit, profile and the expiry span of the central waivers covering
# their failures (waived_min/waived_max, 0 when none): sums of the reported scores and of the
# scores with those waivers (store/aggregates.py); a query at time t takes the waived sums of the
# groups whose waivers are all in force, the reported ones of the groups whose waivers all expired
# or that have none, and recounts the hosts of the (rare) groups in between.
org_profiles = Table(
    "org_profiles", metadata,
    Column("org_path", String(512), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("waived_min", BigInteger, nullable=False),
    Column("waived_max", BigInteger, nullable=False),
    Column("hosts", Integer, nullable=False),
    Column("score_sum", Float, nullable=False),
    Column("scored", Integer, nullable=False),
    Column("wscore_sum", Float, nullable=False),
    Column("wscored", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("waived_n", Integer, nullable=False),
    Column("passed", Integer, nullable=False),
    Column("raw_sum", Float, nullable=False),
    Column("raw_n", Integer, nullable=False),
    UniqueConstraint("org_path", "profile", "waived_min", "waived_max", name="uq_org_profiles_key"),
)

# Hosts failing a rule (in any profile), per org unit: covered_until is 0 when a failure is not
# covered by a central waiver, else the earliest expiry of the waivers covering the host's failures
# of the rule; at time t the host fails the rule when covered_until <= t. severity: the most severe
# of the host's failures of the rule ('' none; migration 0019).
rule_failing = Table(
    "rule_failing", metadata,
    Column("org_path", String(512), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("covered_until", BigInteger, nullable=False),
    Column("hosts", Integer, nullable=False),
    Column("severity", String(16), nullable=False, server_default=""),
    UniqueConstraint("org_path", "rule_id", "covered_until", "severity", name="uq_rule_failing_key"),
)

# Change records (store/changes.py), written in the transaction that replaces a host's latest state
# (intake/batch.py, reevaluation through intake/ingest.py apply_latest): one row per rule whose reported
# status or severity changed between a host profile's consecutive latest states, and one per component
# added or removed (a changed component: removed with its old details, added with its new, same time).
# ``at`` is the collected time of the report that made the change; ``id`` orders the rows of one time.
# A host's first report writes none (the host joined). The change feed folds them per key over a window.
_ID = BigInteger().with_variant(Integer, "sqlite")
result_changes = Table(
    "result_changes", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    # no foreign key (migration 0031): written only under the host row's lock, hosts are never deleted
    Column("host_id", String(36), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("status_before", String(16), nullable=True),  # NULL: the rule was not reported
    Column("status_after", String(16), nullable=True),  # NULL: no longer reported
    Column("severity", String(16), nullable=True),  # after the change
    Column("title_zh", String(512), nullable=True),
    Column("title_en", String(512), nullable=True),
    # the time of the key's change before this one (-1: none), written with the row (changes.write):
    # the change page finds a key's first change in a window by it (store/change_summary.py)
    Column("prev_at", BigInteger, nullable=True),
    Index("ix_result_changes_at", "at"),
    Index("ix_result_changes_host_at", "host_id", "at"),
)

component_changes = Table(
    "component_changes", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    # no foreign key (migration 0031): written only under the host row's lock, hosts are never deleted
    Column("host_id", String(36), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("op", String(8), nullable=False),  # add | remove
    Column("category", String(32), nullable=True),
    Column("comp_key", String(255), nullable=True),  # product_id, else the English name
    Column("product_id", String(64), nullable=True),
    Column("name_zh", String(255), nullable=True),
    Column("name_en", String(255), nullable=True),
    Column("origin", String(16), nullable=True),
    Column("version", String(255), nullable=True),
    Column("substitutes", Text, nullable=True),  # JSON list
    Column("prev_at", BigInteger, nullable=True),  # as in result_changes
    Index("ix_component_changes_at", "at"),
    Index("ix_component_changes_host_at", "host_id", "at"),
    # the domestic components added (0034): the hosts that can have completed a substitution
    # (changes.substitutions), found without reading every component change of the window
    Index("ix_component_changes_domestic_add", "at", postgresql_where=text("op = 'add' AND origin = 'domestic'"),
          sqlite_where=text("op = 'add' AND origin = 'domestic'")),
)

# The collected time of each host's oldest report ever stored (kept when retention prunes it): the
# change feed's hosts that joined in a window (migration 0029). A table of its own: one more column on
# hosts, whose rows every report rewrites in place, left some of those updates without room on their
# page (test_host_rows_are_rewritten_in_place); this row is written at a host's first report only.
host_firsts = Table(
    "host_firsts", metadata,
    Column("host_id", String(36), ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True),
    Column("first_collected", BigInteger, nullable=False),
)

# The change page's default view kept ahead (store/change_digest.py): the last 7 days of changes as of
# ``at``, one row per org path that has live hosts (its counts and each list's first page, JSON),
# rewritten whole by one node every change_digest_interval; a scope reads the rows of its orgs.
change_digests = Table(
    "change_digests", metadata,
    Column("org_path", String(512), primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
)

# The (host, UTC day) pairs whose reports lost their bodies and that are not yet kept as daily summaries
# (store/retention.py; migration 0032): written with the prune, deleted with the summary.
summary_pending = Table(
    "summary_pending", metadata,
    Column("host_id", String(36), primary_key=True),
    Column("day", Integer, primary_key=True),
)

# When change records began (migration 0016 on a database that already held reports): earlier changes
# are not in the feed. No row: recorded from the first report on.
change_epoch = Table(
    "change_epoch", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("since", BigInteger, nullable=False),
)

waivers = Table(
    "waivers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", String(128), nullable=False),
    Column("scope", String(8), nullable=False),  # host | org | all
    Column("scope_value", String(512), nullable=True),  # host id or org path
    Column("justification", Text, nullable=False),
    Column("approver", String(128), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("revoked_by", String(64), nullable=True),
    # life cycle (workflow/waivers.py): requested -> approved | rejected; requested/approved -> revoked;
    # an approved waiver past expires_at is expired (computed, no job)
    Column("state", String(16), nullable=False, server_default="approved"),
    Column("items", Text, nullable=True),  # JSON list of item keys of the rule; NULL: the whole rule
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", BigInteger, nullable=True),
    Column("decision_note", Text, nullable=True),
    Index("ix_waivers_rule", "rule_id"),
)

api_keys = Table(  # scanner/server/access/apikeys.py
    "api_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("orgs", Text, nullable=False),  # JSON list of org subtrees
    Column("created_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)

# --- alerts (scanner/server/workflow/alerts.py) --------------------------------------------------------
alert_channels = Table(
    "alert_channels", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # webhook | syslog | email
    Column("config", Text, nullable=False),  # JSON: url / address / smtp settings
    Column("secret", String(128), nullable=True),  # webhook HMAC key
    Column("created_at", BigInteger, nullable=False),
)

alert_rules = Table(
    "alert_rules", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),  # new_failure | host_silent | failing_hosts
    Column("params", Text, nullable=False),  # JSON
    Column("org_path", String(512), nullable=False),  # the subtree it watches
    Column("channel_id", Integer, ForeignKey("alert_channels.id", ondelete="CASCADE"), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

alert_state = Table(  # what each rule has already said: one alert per state change, not per report
    "alert_state", metadata,
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("since", BigInteger, nullable=False),
)

alert_outbox = Table(  # durable: an event stays until its channel took it
    "alert_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("channel_id", Integer, ForeignKey("alert_channels.id", ondelete="CASCADE"), nullable=False),
    Column("event", Text, nullable=False),  # JSON
    Column("created_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    Column("last_error", String(512), nullable=True),
    Index("ix_alert_outbox_due", "delivered_at", "next_attempt_at"),
)

# The fleet's state as of the end of each past day, per org unit and profile (store/rollups.py).
daily_rollups = Table(
    "daily_rollups", metadata,
    Column("day", Integer, nullable=False),  # unix day number (UTC)
    Column("org_path", String(512), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("hosts", Integer, nullable=False),
    Column("score_sum", Float, nullable=True),
    Column("scored", Integer, nullable=False),
    Column("loc_sum", Float, nullable=True),
    Column("loc_n", Integer, nullable=False),
    UniqueConstraint("day", "org_path", "profile"),
)

# Latest inventory components per (day, org unit, category) as of each past day's end, from the
# same per-host states as daily_rollups (store/rollups.py): the localization trend per category.
daily_loc = Table(
    "daily_loc", metadata,
    Column("day", Integer, nullable=False),
    Column("org_path", String(512), nullable=False),
    Column("category", String(32), nullable=False),
    Column("hosts", Integer, nullable=False),
    Column("n_domestic", Integer, nullable=False),
    Column("n_foreign", Integer, nullable=False),
    Column("n_unknown", Integer, nullable=False),
    UniqueConstraint("day", "org_path", "category"),
)

# Days whose roll-up is computed (also those with no hosts at all).
rollup_days = Table(
    "rollup_days", metadata,
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("computed_at", BigInteger, nullable=False),
)

waiver_events = Table(
    "waiver_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("waiver_id", Integer, ForeignKey("waivers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # request | approve | reject | revoke
    Column("note", Text, nullable=True),
)

# Assessors' verdicts for manual and partial GB/T 28448 items (workflow/assessments.py)
assessments = Table(
    "assessments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("level", String(32), nullable=False),  # controls name, e.g. mlps-l3
    Column("item_id", String(64), nullable=False),  # e.g. L3-CES1-05
    Column("target_kind", String(8), nullable=False),  # host | org
    Column("target", String(512), nullable=False),  # host id or org path
    Column("org_path", String(512), nullable=False),  # where it lies (scope)
    Column("verdict", String(16), nullable=False),  # conform | partial | nonconform | not_applicable
    Column("record", Text, nullable=False),  # 测评记录
    Column("assessor", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("revoked_by", String(64), nullable=True),
    Index("ix_assessments_target", "level", "target"),
)

# Each host's working-paper summary of its latest report (store/paper_summaries.py, migration 0035): per
# 控制点 the test-unit verdicts, problems by risk and score, kept so that a subtree's summary by 控制点 reads
# them instead of decoding and assessing every report. ``stamp`` digests what the summary was made from
# (report, its re-evaluation, the valid recorded verdicts, the server's catalog and code); a row whose
# stamp no longer matches is made again when read. One row per host, rewritten in place.
host_papers = Table(
    "host_papers", metadata,
    Column("host_id", String(36), ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True),
    Column("report_id", String(36), nullable=False),
    Column("level", String(32), nullable=True),  # the report's coverage level (whose verdicts apply)
    Column("stamp", String(64), nullable=False),
    Column("summary", Text, nullable=False),  # JSON
    Column("made_at", BigInteger, nullable=False),
)

# Each host's set of rule ids with results, as a digest, kept for the coverage of org subtrees
# (store/coverage.py, migration 0036): ``profiles`` is the key it was read under (each profile's latest
# report id, host_profiles); intake changes it with every new latest report, re-evaluation deletes the row.
# ``digest``: SHA-256 of the host's result rows' rule ids in (profile, rule) order, '' for none.
host_rule_sets = Table(
    "host_rule_sets", metadata,
    Column("host_id", String(36), ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True),
    Column("profiles", Text, nullable=False),
    Column("digest", String(64), nullable=False),
)

assessment_files = Table(
    "assessment_files", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("assessment_id", Integer, ForeignKey("assessments.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
)


# 信创 targets: per org unit and component category, the localization rate to reach by a deadline
# (store/localization.py); the rate when it was set is kept so progress can be projected.
assessment_frames = Table(  # the working paper's frame per org unit (workflow/frames.py)
    "assessment_frames", metadata,
    Column("org_path", String(512), primary_key=True),
    Column("frame", Text, nullable=False),  # JSON: scanner/assessment_info.py fields, without manual
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(64), nullable=False),
)

loc_targets = Table(
    "loc_targets", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_path", String(512), nullable=False),
    Column("category", String(32), nullable=False),
    Column("target_rate", Float, nullable=False),  # 0..1
    Column("deadline", BigInteger, nullable=False),  # unix seconds (end of the day, UTC)
    Column("baseline_rate", Float, nullable=True),  # the subtree's rate when set (None: nothing judged yet)
    Column("set_by", String(64), nullable=False),
    Column("set_at", BigInteger, nullable=False),
    Column("note", Text, nullable=True),
    UniqueConstraint("org_path", "category"),
)


# Scheduled background jobs (store/jobs.py): a run is claimed by one node, by a conditional update
# of its job's row, so that several server processes or machines run each job once per interval.
job_runs = Table(
    "job_runs", metadata,
    Column("name", String(64), primary_key=True),
    Column("started_at", BigInteger, nullable=False),  # the claimed run's start (0: never)
    Column("finished_at", BigInteger, nullable=True),
    Column("runs", Integer, nullable=False),
    Column("node", String(128), nullable=True),  # host:pid of the node that claimed it
    Column("detail", Text, nullable=True),  # JSON: what the last run did
)


audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=True),
    Column("detail", Text, nullable=True),  # JSON
    Column("ip", String(64), nullable=True),
    Column("org_path", String(512), nullable=True),  # the department it concerns (scoped audit views)
    Index("ix_audit_log_at", "at"),
)


def is_sqlite(engine):
    return engine.dialect.name == "sqlite"


def normalise_url(url):
    """Accept ``postgresql://`` (use psycopg 3) and plain SQLite file paths."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return "sqlite:///" + os.path.abspath(url)
    return url


def make_engine(url, pool_size=10):
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60},
                               pool_size=pool_size, max_overflow=pool_size)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Writers take the lock up front: a deferred transaction that later upgrades to a
            # write can fail with "database is locked" under concurrency.
            immediate = conn.get_execution_options().get("xcscan_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)


def insert_new(conn, table, key):
    """An INSERT into ``table`` that skips the rows whose ``key`` columns are taken already
    (``ON CONFLICT (key) DO NOTHING``, on either database)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=list(key))


@contextlib.contextmanager
def write_tx(engine):
    """A write transaction (BEGIN IMMEDIATE on SQLite)."""
    with engine.connect() as conn:
        conn = conn.execution_options(xcscan_write=True)
        with conn.begin():
            yield conn


@contextlib.contextmanager
def read_conn(engine):
    with engine.connect() as conn:
        yield conn
