# ---- xcscan fix: functions (POSIX sh + awk; the same semantics as `xcscan fix --apply`) ----
# XCSCAN_ROOT=/mnt/image sh fix.sh   fixes an offline image: no commands are run on this host then.
# Every file is backed up (once) under $XCSCAN_BACKUP before it is changed.
set -u
umask 022
ROOT="${XCSCAN_ROOT:-}"
ROOT="${ROOT%/}"
LIVE=1
[ -n "$ROOT" ] && LIVE=0
# Inside a chroot (an image being built: kickstart %post, debootstrap, a chroot of a mounted disk)
# the files are fixed as in an image and nothing runs against the system outside it (no sysctl -w,
# systemctl, sshd -t, augenrules): / is not the root of PID 1, or there is no /proc at all.
if [ $LIVE = 1 ]; then
    if [ ! -d /proc/1 ]; then
        LIVE=0; xc_chroot="no /proc"
    else
        # (no 2>/dev/null: a chroot may have /proc but no /dev; an error message is not a device:inode)
        xc_r1=$(stat -Lc '%d:%i' /proc/1/root/ 2>&1)
        case $xc_r1 in
            *[!0-9:]* | '') ;;  # PID 1 not ours to inspect: a running system
            *) [ "$xc_r1" = "$(stat -Lc '%d:%i' /)" ] || { LIVE=0; xc_chroot="/ is not the root of PID 1"; } ;;
        esac
    fi
    [ $LIVE = 1 ] || printf '%s\n' "xcscan-fix: in a chroot ($xc_chroot): the files are fixed as in an image; no command runs"
fi
BACKUP="${XCSCAN_BACKUP:-$ROOT/var/backups/xcscan-fix-$(date -u +%Y%m%dT%H%M%SZ)}"
FAILED=0
CHANGED=0

xc_log() { printf '%s\n' "$*"; }
xc_fail() { printf 'xcscan-fix: %s\n' "$*" >&2; FAILED=$((FAILED + 1)); }

# target path with symlinks followed inside the root (as sed --follow-symlinks does)
xc_resolve() {
    p=$1; n=0
    while [ -L "$ROOT$p" ] && [ $n -lt 40 ]; do
        t=$(readlink "$ROOT$p")
        case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
        n=$((n + 1))
    done
    printf '%s\n' "$p"
}

# a copy of a file (mode and owner kept) under $BACKUP, once; directories: their mode and owner
# in $BACKUP/MODES
xc_requires() { # PATH...: all present, else the rule is skipped (the software is not installed)
    for r in "$@"; do
        { [ -e "$ROOT$r" ] || [ -L "$ROOT$r" ]; } || { xc_log "skipped: $r does not exist"; return 1; }
    done
}

xc_backup() {
    { [ -e "$ROOT$1" ] || [ -L "$ROOT$1" ]; } || return 0
    (umask 077 && mkdir -p "$BACKUP$(dirname "$1")") || return 1
    if [ -d "$ROOT$1" ] && [ ! -L "$ROOT$1" ]; then
        { [ -f "$BACKUP/MODES" ] && grep -q "^$1 " "$BACKUP/MODES"; } || stat -c "$1 %a %u %g" "$ROOT$1" >> "$BACKUP/MODES"
        return 0
    fi
    { [ -e "$BACKUP$1" ] || [ -L "$BACKUP$1" ]; } && return 0
    cp -pP "$ROOT$1" "$BACKUP$1"
}

# xc_edit TARGET CREATE_MODE AWK_PROGRAM [awk -v assignments...]: rewrite a file through awk,
# atomically (temp file next to it keeps mode, owner and SELinux label), only when it changes.
xc_edit() {
    f=$(xc_resolve "$1"); mode=$2; prog=$3; shift 3
    dir=$(dirname "$ROOT$f")
    [ -d "$dir" ] || mkdir -p "$dir" || { xc_fail "cannot create $dir"; return 1; }
    tmp="$dir/.$(basename "$f").xcscan.$$"
    if [ -f "$ROOT$f" ]; then
        cp -p "$ROOT$f" "$tmp" || { xc_fail "cannot copy $f"; return 1; }
        src="$ROOT$f"
    else
        : > "$tmp" && chmod "$mode" "$tmp"
        src=""  # a new file: awk reads an empty pipe (an image being built may have no /dev/null)
    fi
    if [ -n "$src" ]; then awk "$@" "$prog" "$src" > "$tmp"; else printf '' | awk "$@" "$prog" > "$tmp"; fi
    if [ $? -ne 0 ]; then
        rm -f "$tmp"; xc_fail "cannot edit $f"; return 1
    fi
    if [ -f "$ROOT$f" ] && cmp -s "$tmp" "$ROOT$f"; then
        rm -f "$tmp"; return 0
    fi
    xc_backup "$f"
    mv -f "$tmp" "$ROOT$f" || { rm -f "$tmp"; xc_fail "cannot replace $f"; return 1; }
    [ $LIVE = 1 ] && command -v restorecon >/dev/null 2>&1 && restorecon "$f" 2>/dev/null
    CHANGED=$((CHANGED + 1)); xc_log "changed: $f"
}

XC_AWK_SET_KEY='
BEGIN { k = key; gsub(/[.]/, "\\.", k); re = "^[ \t]*" k "([ \t=].*)?$"; line = key sep val; n = 0 }
$0 ~ re {
    n++; v = $0; sub(/^[ \t]*/, "", v); v = substr(v, length(key) + 1); sub(/^[ \t]*[ \t=][ \t]*/, "", v)
    sub(/[ \t]*$/, "", v)
    if (v == val) print; else print line
    next
}
{ print }
END { if (!n) print line }'

XC_AWK_SYSCTL='
BEGIN { k = key; gsub(/[.]/, "\\.", k); re = "^[ \t]*-?" k "[ \t]*=" }
$0 ~ re { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]*$/, "", v); if (v == val) print; else print key " = " val; next }
{ print }'

XC_AWK_SSHD_FIRST='
BEGIN { kw = tolower(key); done = 0; inmatch = 0 }
{
    t = $0; sub(/^[ \t]+/, "", t); w = tolower(t)
    if (w ~ /^match[ \t]/) inmatch = 1
    if (!done && !inmatch && (index(w, kw " ") == 1 || index(w, kw "\t") == 1 || w ~ ("^" kw "[ \t]*="))) {
        print key " " val; done = 1; next
    }
    print
}'

XC_AWK_SSHD_ENSURE='
{ l[NR] = $0; c = $0; sub(/\r$/, "", c); if (c == key " " val) have = 1
  if (!at && tolower($0) ~ /^[ \t]*(include|match)[ \t]/) at = NR }
END {
    for (i = 1; i <= NR; i++) { if (!have && at == i) print key " " val; print l[i] }
    if (!have && !at) print key " " val
}'

XC_AWK_LINE='
BEGIN { n = split(ENVIRON["XC_LINES"], want, "\n") }
{ print; c = $0; sub(/\r$/, "", c); for (i = 1; i <= n; i++) if (c == want[i]) have[i] = 1 }
END { for (i = 1; i <= n; i++) if (want[i] != "" && !have[i]) { print want[i]; have[i] = 1 } }'

XC_AWK_LOCK_EMPTY='
BEGIN { FS = ":"; OFS = ":" }
$1 != "" && NF >= 2 && $2 == "" { $2 = "!" }
{ print }'

XC_AWK_PAM_ABSENT='
{
    line = $0
    if (line !~ /^[ \t]*#/ && match(line, "[ \t/]" mod "([ \t]|$)")) {
        head = substr(line, 1, RSTART + length(mod)); rest = substr(line, RSTART + length(mod) + 1)
        if (head ~ /^[ \t]*-?[A-Za-z]+[ \t]+(\[[^]]*\]|[^ \t]+)[ \t]+[^ \t]*$/) {
            out = ""
            while (match(rest, "[ \t]+" arg "(=[^ \t]*)?([ \t]|$)")) {
                tail = substr(rest, RSTART + RLENGTH)
                sep = substr(rest, RSTART + RLENGTH - 1, 1)
                out = out substr(rest, 1, RSTART - 1)
                rest = (sep == " " || sep == "\t") ? sep tail : tail
            }
            line = head out rest
        }
    }
    print line
}'

xc_set_key() { # PATH MODE KEY SEP VALUE
    xc_edit "$1" "$2" "$XC_AWK_SET_KEY" -v key="$3" -v sep="$4" -v val="$5" || return
    case $1 in /etc/audit/auditd.conf) XC_AUDITD_CONF_CHANGED=1 ;; esac
}

xc_sysctl() { # KEY VALUE
    found=0
    for f in "$ROOT"/etc/sysctl.d/*.conf "$ROOT"/etc/sysctl.conf; do
        [ -f "$f" ] || continue
        t=${f#"$ROOT"}
        if awk -v key="$1" 'BEGIN { k = key; gsub(/[.]/, "\\.", k); re = "^[ \t]*-?" k "[ \t]*=" }
                $0 ~ re { n = 1 } END { exit !n }' "$f"; then
            found=1
            xc_edit "$t" 0644 "$XC_AWK_SYSCTL" -v key="$1" -v val="$2"
        fi
    done
    [ $found = 1 ] || xc_set_key /etc/sysctl.d/99-xcscan.conf 0644 "$1" ' = ' "$2"
    [ $LIVE = 0 ] || sysctl -q -w "$1=$2" || xc_fail "sysctl -w $1=$2"
}

xc_sshd_files() {
    main=$(xc_resolve /etc/ssh/sshd_config)
    [ -f "$ROOT$main" ] || return 1
    printf '%s\n' /etc/ssh/sshd_config
    for pat in $(awk 'tolower($1) == "include" { for (i = 2; i <= NF; i++) print $i }' "$ROOT$main"); do
        case $pat in /*) ;; *) pat=/etc/ssh/$pat ;; esac
        for f in $ROOT$pat; do
            [ -f "$f" ] || continue
            t=${f#"$ROOT"}
            case $t in /etc/crypto-policies/*|/etc/ssh/sshd_config) continue ;; esac
            printf '%s\n' "$t"
        done
    done
}

xc_sshd() { # KEYWORD VALUE
    files=$(xc_sshd_files) || { xc_fail "/etc/ssh/sshd_config does not exist"; return 1; }
    for t in $files; do
        xc_edit "$t" 0600 "$XC_AWK_SSHD_FIRST" -v key="$1" -v val="$2"
    done
    xc_edit /etc/ssh/sshd_config 0600 "$XC_AWK_SSHD_ENSURE" -v key="$1" -v val="$2"
    XC_SSHD_CHANGED=1
}

xc_sshd_check() { # after all sshd changes: validate, then reload (live)
    [ "${XC_SSHD_CHANGED:-0}" = 1 ] && [ $LIVE = 1 ] || return 0
    if ! sshd -t; then
        xc_fail "sshd -t rejects the configuration; restoring the sshd files from $BACKUP"
        for t in $(xc_sshd_files); do
            t=$(xc_resolve "$t")
            [ -f "$BACKUP$t" ] && cp -p "$BACKUP$t" "$t"
        done
        return 1
    fi
    systemctl try-reload-or-restart sshd.service ssh.service 2>/dev/null || true
}

xc_id() { # passwd|group NAME -> numeric id from the target's own table
    awk -F: -v n="$2" '$1 == n { print $3; exit }' "$ROOT/etc/$1"
}

xc_mode() { # SYMBOLIC_MODE OWNER GROUP PATH... (globs expanded by the caller)
    sym=$1; own=$2; grp=$3; shift 3
    uid=""; gid=""
    [ -n "$own" ] && { uid=$(xc_id passwd "$own"); [ -n "$uid" ] || { xc_fail "no user $own"; return 1; }; }
    [ -n "$grp" ] && { gid=$(xc_id group "$grp"); [ -n "$gid" ] || { xc_fail "no group $grp"; return 1; }; }
    for f in "$@"; do
        [ -e "$f" ] && [ ! -L "$f" ] || continue
        t=${f#"$ROOT"}
        old=$(stat -c '%a %u %g' "$f")
        new_uid=${uid:-$(stat -c %u "$f")}; new_gid=${gid:-$(stat -c %g "$f")}
        tmpstat=$old
        if [ "$(stat -c '%u %g' "$f")" != "$new_uid $new_gid" ]; then
            xc_backup "$t"; chown "$new_uid:$new_gid" "$f" || xc_fail "chown $t"
        fi
        xc_backup "$t"
        chmod "$sym" "$f" || xc_fail "chmod $t"
        if [ "$(stat -c '%a %u %g' "$f")" != "$tmpstat" ]; then CHANGED=$((CHANGED + 1)); xc_log "changed: $t"; fi
    done
}

# offline (an image): the [Install] links themselves, as the planner does; live: systemctl
xc_unit() { # enabled|disabled UNIT
    unitfile=""
    for d in /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system /usr/lib/systemd/system \
             /lib/systemd/system; do
        if [ -z "$unitfile" ] && { [ -f "$ROOT$d/$2" ] || [ -L "$ROOT$d/$2" ]; }; then unitfile=$d/$2; fi
    done
    if [ "$1" = enabled ] && [ -z "$unitfile" ]; then
        xc_log "skipped: unit $2 is not installed"; return 0
    fi
    if [ $LIVE = 1 ]; then
        if [ "$1" = disabled ]; then
            systemctl is-enabled --quiet "$2" 2>/dev/null || return 0
            systemctl disable --now "$2" || xc_fail "systemctl disable $2"
        else
            systemctl is-enabled --quiet "$2" 2>/dev/null && systemctl is-active --quiet "$2" && return 0
            systemctl enable --now "$2" || xc_fail "systemctl enable $2"
        fi
        return 0
    fi
    if [ "$1" = disabled ]; then
        for l in "$ROOT"/etc/systemd/system/*.wants/"$2" "$ROOT"/etc/systemd/system/*.requires/"$2"; do
            [ -L "$l" ] || continue
            t=${l#"$ROOT"}
            xc_backup "$t" && rm -f "$l" && { CHANGED=$((CHANGED + 1)); xc_log "removed: $t"; }
        done
        return 0
    fi
    [ -L "$ROOT$unitfile" ] && [ "$(readlink "$ROOT$unitfile")" = /dev/null ] && { xc_fail "unit $2 is masked"; return 1; }
    targets=$(awk '/^\[/ { s = $0 } s == "[Install]" && /^(WantedBy|RequiredBy)[ \t]*=/ {
        k = $0; sub(/[ \t]*=.*/, "", k); v = $0; sub(/^[^=]*=/, "", v)
        n = split(v, a, /[ \t]+/); for (i = 1; i <= n; i++) if (a[i] != "") print a[i] (k == "WantedBy" ? ".wants" : ".requires")
    }' "$ROOT$(xc_resolve "$unitfile")")
    [ -n "$targets" ] || { xc_fail "unit $2 has no [Install] WantedBy="; return 1; }
    for t in $targets; do
        l=/etc/systemd/system/$t/$2
        { [ -L "$ROOT$l" ] || [ -e "$ROOT$l" ]; } && continue
        mkdir -p "$ROOT/etc/systemd/system/$t" && ln -s "$unitfile" "$ROOT$l" && { CHANGED=$((CHANGED + 1)); xc_log "changed: $l"; }
    done
}

xc_lines() { # PATH MODE LINE...
    p=$1; m=$2; shift 2
    XC_LINES=$(printf '%s\n' "$@") && export XC_LINES
    xc_edit "$p" "$m" "$XC_AWK_LINE"
    case $p in /etc/audit/rules.d/*) XC_AUDIT_CHANGED=1 ;; esac
}

xc_audit_load() { # rules.d changed: load them; auditd.conf changed: SIGHUP makes auditd re-read it (auditd(8))
    [ $LIVE = 1 ] || return 0
    if [ "${XC_AUDITD_CONF_CHANGED:-0}" = 1 ]; then
        pkill -HUP -x auditd; [ $? -le 1 ] || xc_fail "pkill -HUP -x auditd"  # 1: none running, it reads the file at start
    fi
    [ "${XC_AUDIT_CHANGED:-0}" = 1 ] || return 0
    augenrules --load || xc_fail "augenrules --load"
}

xc_remove() { # PATH... (globs expanded by the caller)
    for f in "$@"; do
        { [ -f "$f" ] || [ -L "$f" ]; } || continue
        t=${f#"$ROOT"}
        xc_backup "$t" && rm -f "$f" && { CHANGED=$((CHANGED + 1)); xc_log "removed: $t"; }
    done
}

xc_lock_empty_passwords() {
    xc_edit /etc/shadow 0000 "$XC_AWK_LOCK_EMPTY"
}

xc_pam_arg_absent() { # MODULE ARG FILE...
    mod=$1; a=$2; shift 2
    for p in "$@"; do
        [ -f "$ROOT$p" ] || continue
        xc_edit "$p" 0644 "$XC_AWK_PAM_ABSENT" -v mod="$mod" -v arg="$a"
    done
}

xc_authselect_feature() { # FEATURE: recorded for `authselect apply-changes`; live: enabled now
    [ -f "$ROOT/etc/authselect/authselect.conf" ] || return 0
    XC_LINES=$1 && export XC_LINES
    xc_edit /etc/authselect/authselect.conf 0644 "$XC_AWK_LINE"
    [ $LIVE = 0 ] || authselect enable-feature "$1" >/dev/null || xc_fail "authselect enable-feature $1"
}
# ---- end of functions ----
