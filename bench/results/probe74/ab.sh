#!/bin/bash
# Session 74's probe (README.md): the build before a change (BEFORE, a built checkout) and this one, then least-request,
# on one scenario, in one invocation.
# usage: BEFORE=/path/to/built/checkout ab.sh scenario cap rate duration seed tag [probe flags...]
# The probe is session 33's (../gen33-probe/probe.js) with probe-from-gen33.diff applied (session 55's scenarios plus
# sharegpt, tiny, hetdec, vllmmt, psqa, mooncake, zipfsp; logs in /tmp/h74a-logs). Results go to results.jsonl here, or $PROBE_OUT.
set -e
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
PROBE="$(mktemp -d)/probe.js"
patch -s -o "$PROBE" "$here/../gen33-probe/probe.js" "$here/probe-from-gen33.diff"
mkdir -p /tmp/h74a-logs
sc=$1; cap=$2; rate=$3; dur=$4; seed=$5; tag=$6; shift 6
for r in "${BEFORE:?set BEFORE to a built checkout of the build before}" "$root"; do
  n=$(basename "$r")
  node "$PROBE" --root "$r" --scenario "$sc" --cap "$cap" --policy kvroute --seed "$seed" --rate "$rate" --duration "$dur" --tag "$tag-$n" "$@" --out "${PROBE_OUT:-$here/results.jsonl}" 2>&1 | tail -1 | sed "s|^|[$n] |"
done
node "$PROBE" --root "$root" --scenario "$sc" --cap "$cap" --policy least-request --seed "$seed" --rate "$rate" --duration "$dur" --tag "$tag" "$@" --out "${PROBE_OUT:-$here/results.jsonl}" 2>&1 | tail -1
