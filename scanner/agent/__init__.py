"""The xcscan agent: enrollment, scheduled runs, signed store-and-forward upload.

Modules: config (agent.yaml), keys + ed25519 (identity, signing), spool
(atomic on-disk queue), lock (one run at a time), client (HTTPS, pinned
trust), uploader (oldest first, backoff, ack before delete), runner (one run),
enroll, status, state (status.json), log (stderr/syslog), testhook (crash
tests). Python 3.7 compatible, stdlib plus the agent's six dependencies.
"""
