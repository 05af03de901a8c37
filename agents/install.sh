#!/bin/sh
# Install the xcscan agent on one host from the offline bundle, enroll it and schedule it.
#
#   XCSCAN_ENROLL_TOKEN=... sh install.sh --server https://agg.example:8443 --ca ca.pem \
#       [--bundle xcscan-agent.pyz] [--python /usr/bin/python3] [--profile mlps-l3]
#
# Installs /opt/xcscan/xcscan-agent.pyz and the /usr/local/sbin/xcscan wrapper, enrolls
# (unless /etc/xcscan/agent.yaml already exists), installs the systemd service + timer and
# enables the timer when systemd runs, else installs /etc/cron.d/xcscan-agent.
# Every path can be changed (see --help); run as root. Idempotent: safe to run again.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SERVER=""; TOKEN="${XCSCAN_ENROLL_TOKEN:-}"; CA=""; FINGERPRINT=""; PROFILE=""
BUNDLE="$HERE/xcscan-agent.pyz"; [ -f "$BUNDLE" ] || BUNDLE="$HERE/../dist/xcscan-agent.pyz"
PYTHON=""; INSTALL_DIR=/opt/xcscan; BIN_DIR=/usr/local/sbin; CONFIG=/etc/xcscan/agent.yaml
SPOOL_DIR=/var/spool/xcscan; STATE_DIR=/var/lib/xcscan
SYSTEMD_DIR=/etc/systemd/system; CRON_DIR=/etc/cron.d; SCHEDULER=auto; RUN_NOW=0

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: --server URL --token T --ca FILE | --fingerprint SHA256 --bundle FILE --python PATH"
    echo "         --profile P --install-dir D --bin-dir D --config FILE --spool-dir D --state-dir D"
    echo "         --systemd-dir D --cron-dir D --scheduler auto|systemd|cron|none --run-now"
}
die() { echo "xcscan install: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --server) SERVER=$2; shift 2;;
        --token) TOKEN=$2; shift 2;;
        --ca) CA=$2; shift 2;;
        --fingerprint) FINGERPRINT=$2; shift 2;;
        --profile) PROFILE=$2; shift 2;;
        --bundle) BUNDLE=$2; shift 2;;
        --python) PYTHON=$2; shift 2;;
        --install-dir) INSTALL_DIR=$2; shift 2;;
        --bin-dir) BIN_DIR=$2; shift 2;;
        --config) CONFIG=$2; shift 2;;
        --spool-dir) SPOOL_DIR=$2; shift 2;;
        --state-dir) STATE_DIR=$2; shift 2;;
        --systemd-dir) SYSTEMD_DIR=$2; shift 2;;
        --cron-dir) CRON_DIR=$2; shift 2;;
        --scheduler) SCHEDULER=$2; shift 2;;
        --run-now) RUN_NOW=1; shift;;
        -h|--help) usage; exit 0;;
        *) usage >&2; die "unknown option: $1";;
    esac
done

[ -f "$BUNDLE" ] || die "bundle not found: $BUNDLE (build it with: python3 agents/bundle/build.py)"
if [ -z "$PYTHON" ]; then
    for p in /usr/bin/python3 /usr/libexec/platform-python python3; do
        if command -v "$p" >/dev/null 2>&1; then PYTHON=$(command -v "$p"); break; fi
    done
fi
[ -n "$PYTHON" ] || die "no python3 found; pass --python PATH"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 7) else 1)' \
    || die "$PYTHON is older than Python 3.7; pass --python PATH to a newer one"

umask 022
mkdir -p "$INSTALL_DIR" "$BIN_DIR" "$(dirname "$CONFIG")"
cp "$BUNDLE" "$INSTALL_DIR/xcscan-agent.pyz.new" && chmod 0644 "$INSTALL_DIR/xcscan-agent.pyz.new"
mv -f "$INSTALL_DIR/xcscan-agent.pyz.new" "$INSTALL_DIR/xcscan-agent.pyz"
WRAPPER="$BIN_DIR/xcscan"
cat > "$WRAPPER.new" <<WRAP
#!/bin/sh
# xcscan (offline bundle) — installed by agents/install.sh
XCSCAN_AGENT_CONFIG="\${XCSCAN_AGENT_CONFIG:-$CONFIG}"; export XCSCAN_AGENT_CONFIG
exec $PYTHON $INSTALL_DIR/xcscan-agent.pyz "\$@"
WRAP
chmod 0755 "$WRAPPER.new" && mv -f "$WRAPPER.new" "$WRAPPER"

if [ -f "$CONFIG" ]; then
    echo "xcscan install: $CONFIG exists, keeping the enrollment"
else
    [ -n "$SERVER" ] || die "--server URL is required to enroll"
    [ -n "$TOKEN" ] || die "an enrollment token is required (--token or XCSCAN_ENROLL_TOKEN)"
    set -- --server "$SERVER" --config "$CONFIG" --spool-dir "$SPOOL_DIR" --state-dir "$STATE_DIR"
    if [ -n "$CA" ]; then set -- "$@" --ca "$CA"; elif [ -n "$FINGERPRINT" ]; then set -- "$@" --fingerprint "$FINGERPRINT";
    else die "--ca FILE or --fingerprint SHA256 is required"; fi
    [ -z "$PROFILE" ] || set -- "$@" --profile "$PROFILE"
    XCSCAN_ENROLL_TOKEN=$TOKEN "$WRAPPER" agent enroll "$@"
fi

render() {  # render SRC DEST: the shipped unit/cron file with this installation's paths
    sed -e "s#/usr/local/sbin/xcscan#$WRAPPER#g" -e "s#/etc/xcscan/agent.yaml#$CONFIG#g" \
        -e "s#/var/spool/xcscan#$SPOOL_DIR#g" -e "s#/var/lib/xcscan#$STATE_DIR#g" "$1" > "$2.new"
    chmod 0644 "$2.new" && mv -f "$2.new" "$2"
}
if [ "$SCHEDULER" = auto ]; then
    if [ -d /run/systemd/system ]; then SCHEDULER=systemd; else SCHEDULER=cron; fi
fi
case "$SCHEDULER" in
    systemd)
        mkdir -p "$SYSTEMD_DIR"
        render "$HERE/systemd/xcscan-agent.service" "$SYSTEMD_DIR/xcscan-agent.service"
        render "$HERE/systemd/xcscan-agent.timer" "$SYSTEMD_DIR/xcscan-agent.timer"
        systemctl daemon-reload && systemctl enable --now xcscan-agent.timer
        echo "xcscan install: systemd timer enabled (systemctl list-timers xcscan-agent.timer)";;
    cron)
        mkdir -p "$CRON_DIR"
        render "$HERE/cron/xcscan-agent" "$CRON_DIR/xcscan-agent"
        echo "xcscan install: cron schedule installed in $CRON_DIR/xcscan-agent";;
    none) echo "xcscan install: no schedule installed (--scheduler none)";;
    *) die "--scheduler must be auto, systemd, cron or none";;
esac
if [ "$RUN_NOW" = 1 ]; then
    "$WRAPPER" agent run --config "$CONFIG" --no-splay
fi
