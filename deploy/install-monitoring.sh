#!/usr/bin/env bash
# Install Prometheus (with promtool) and Alertmanager from Debian's packages, for development,
# tests and CI. Idempotent: when prometheus, promtool and prometheus-alertmanager are already on
# the machine it changes nothing.
#
#   bash deploy/install-monitoring.sh          install if missing (needs root and apt-get)
#   bash deploy/install-monitoring.sh --check  exit 0 if installed, 1 if not; install nothing
#
# The Debian packages come with init scripts that would start a system Prometheus on :9090 and
# an Alertmanager on :9093 (plus node-exporter, a recommended package). Tests start their own
# processes with their own config, ports and data directories, so this script keeps the system
# services from starting (a temporary policy-rc.d during the install, no recommended packages)
# and stops them if they run anyway.
set -euo pipefail

PACKAGES=(prometheus prometheus-alertmanager)

say() { echo "install-monitoring: $*"; }

installed() {
    command -v prometheus >/dev/null 2>&1 &&
        command -v promtool >/dev/null 2>&1 &&
        { command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; }
}

stop_services() {
    local svc
    for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
        if [[ -x /etc/init.d/$svc ]]; then
            if command -v service >/dev/null 2>&1; then
                service "$svc" stop >/dev/null 2>&1 || true
            else
                "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
            fi
        fi
    done
}

if [[ ${1:-} == --check ]]; then
    installed
    exit
fi

if installed; then
    say "prometheus $(prometheus --version 2>&1 | head -n1 | awk '{print $3}'), promtool and alertmanager already installed"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    say "ERROR: prometheus/promtool/prometheus-alertmanager missing and not root;" \
        "run as root or: sudo apt-get install ${PACKAGES[*]}" >&2
    exit 1
fi
command -v apt-get >/dev/null 2>&1 || { say "ERROR: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }

# Keep invoke-rc.d from starting the services during the install (exit 101 = action forbidden).
POLICY=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    created_policy=1
fi
cleanup() { if [[ $created_policy -eq 1 ]]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
say "apt-get update"
apt-get update -q
say "apt-get install ${PACKAGES[*]}"
apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PACKAGES[@]}"

stop_services

if ! installed; then
    say "ERROR: install finished but a binary is still missing" >&2
    exit 1
fi
say "installed: $(prometheus --version 2>&1 | head -n1)"
