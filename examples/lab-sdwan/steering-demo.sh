#!/bin/sh
# `make demo` as root (called by examples/lab/loop-demo.sh): path steering on the two-transport lab (docs/loop.md).
#   voice, web and bulk on internet; the internet ISP congested by cross traffic -> qoectl loop moves the
#   journeys out of target to mpls; the congestion ends -> it moves them back once, after the hold time.
# The lab is taken down whatever happens (trap). Report: reports/loop-sdwan.html.
set -eu
BIN=${BIN:-.venv/bin}
WORK=$(mktemp -d /tmp/qoectl-sdwan-demo.XXXXXX)
LABDIR="$WORK/lab"
LIMITS="--act-after 1 --min-interval-s 0 --path-hold 3 --measure-s 2 --interval-s 0"
cleanup() { "$BIN/qoectl" lab --state-dir "$LABDIR" down >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
mkdir -p reports
lab() { "$BIN/qoectl" lab --state-dir "$LABDIR" "$@"; }
loop() { "$BIN/qoectl" loop "$WORK/policy" --lab-dir "$LABDIR" --run-dir "$WORK/runs" --lock-dir "$WORK/locks" \
    --state "$WORK/state" $LIMITS "$@"; }

echo "== E: path steering: voice, web and bulk on internet (mpls idle); the policy applied in cycle 1"
lab up examples/lab-sdwan/lab.yaml >/dev/null
lab policy --out "$WORK/policy" >/dev/null
loop --cycles 2
echo "== E: 14 Mbit/s of cross traffic in the internet ISP (10 Mbit/s, 500 ms FIFO): the loop moves what needs it"
lab degrade internet --cross-traffic-kbps 14000
sleep 2
loop --cycles 2
echo "== E: the cross traffic stops: back to internet once it has met the SLA classes for 3 cycles, then steady"
lab degrade internet --off
loop --cycles 5 --html reports/loop-sdwan.html
