#!/bin/sh
# `make demo` as root: the closed loop on the bundled lab, scenarios A and B end to end (docs/loop.md).
#   A: no QoS on the routers, bulk overloading the WAN at 2x -> `qoectl loop` from no policy.
#   B: the inventory shapes at 10 Mbit/s, the ISP's line carries 8 -> the loop lowers the shaper.
#   E: two transports, one congested from its ISP -> the loop steers journeys to the other and back
#      (examples/lab-sdwan/steering-demo.sh).
# The lab is taken down whatever happens (trap). Reports: reports/loop.html (A), reports/loop-capacity.html (B),
# reports/loop-sdwan.html (E).
set -eu
BIN=${BIN:-.venv/bin}
WORK=$(mktemp -d /tmp/qoectl-loop-demo.XXXXXX)
LABDIR="$WORK/lab"
LIMITS="--act-after 1 --relax-after 15 --headroom 0.8 --max-step-pct 35 --measure-s 3 --interval-s 0"
cleanup() { "$BIN/qoectl" lab --state-dir "$LABDIR" down >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
mkdir -p reports
lab() { "$BIN/qoectl" lab --state-dir "$LABDIR" "$@"; }
loop() { "$BIN/qoectl" loop "$@" --lab-dir "$LABDIR" --run-dir "$WORK/runs" --lock-dir "$WORK/locks" $LIMITS; }

echo "== A: no QoS, bulk at 2x the WAN; qoectl loop from no policy on the routers"
lab up examples/lab/lab.yaml >/dev/null
lab policy --out "$WORK/a" >/dev/null
sleep 3
loop "$WORK/a" --cycles 6 --state "$WORK/state-a" --html reports/loop.html

echo "== B: the inventory says 10 Mbit/s, the ISP carries 8; the policy applied, then qoectl loop"
lab down >/dev/null
lab up examples/lab/lab.yaml >/dev/null
lab policy --out "$WORK/b" >/dev/null
sed -i 's/bandwidth_kbps: 9000/bandwidth_kbps: 10000/' "$WORK/b/inventory.yaml"
lab capacity wan 8000 >/dev/null
QOECTL_LAB_USER=root "$BIN/qoectl" apply "$WORK/b" --known-hosts "$LABDIR/branch-hub/known_hosts" \
    --lock-dir "$WORK/locks" --run-dir "$WORK/apply" --no-diff >/dev/null
sleep 3
loop "$WORK/b" --cycles 6 --state "$WORK/state-b" --html reports/loop-capacity.html
echo "== the loop's Adjustments document (B):"
cat "$WORK/b/adjustments/loop.yaml"
lab down >/dev/null
BIN="$BIN" sh examples/lab-sdwan/steering-demo.sh
