#!/usr/bin/env bash
# Install the peers the benchmarks compare with: Pelican (PyPI) and Hugo (Debian).
# Idempotent; run as root on Debian/Ubuntu (CI runs as root). Missing peers are skipped
# by `python -m benchmarks` with a note, never faked.
set -euo pipefail

python -m pip install --quiet 'pelican[markdown]>=4.9'

if ! command -v hugo >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hugo
    else
        echo "setup.sh: no apt-get here; install Hugo by hand to compare with it" >&2
    fi
fi
pelican --version
hugo version || true
