"""Remediation (加固/整改): fixes declared as data in the rule files, planned against a root,
rendered as a unified diff, a POSIX-shell script or an Ansible playbook, and applied with a
backup and a rollback.

- vocab.py     the closed action vocabulary and its validation (used by `xcscan rules lint`)
- params.py    parameter substitution ({param: x} values, {x} placeholders in text)
- edits.py     pure text transforms shared by the planner (one per action kind)
- planner.py   actions -> file changes and live commands, on an overlay of the target root
- validate.py  sshd and PAM sanity checks of planned contents
- diff.py      unified diff per file
- bash.py      the standalone POSIX-shell script (prelude.sh holds its functions)
- ansible.py   the playbook, as data (builtin modules only)
- apply.py     guarded apply: lock, backups, atomic writes, rollback, log
- select.py    which failed rules to fix, from a report
"""
