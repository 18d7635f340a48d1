#!/bin/bash
# Session 55's probe (report.md): one scenario, cap, rate, duration, seed and tag, then the policies after `--`.
# usage: run.sh scenario cap rate dur seed tag [extra flags...] -- policy...   (needs the built bench/dist of this checkout)
# Results go to results.jsonl here, or to $PROBE_OUT when set (session 56 wrote to ../probe56/).
# The probe is session 33's (../gen33-probe/probe.js) with probe-from-gen33.diff applied: the scenarios hotsys,
# longdoc, chatnosess, llmdsp and burst, their flags, and the `NAME~plugin.param=v~@pluginRef=weight` policy syntax.
set -e
here="$(cd "$(dirname "$0")" && pwd)"
# PROBE_ROOT: another checkout whose built dist to run (session 58 ran the build before its change from a clone).
root="${PROBE_ROOT:-$(cd "$here/../../.." && pwd)}"
probe="$(mktemp -d)/probe.js"
patch -s -o "$probe" "$here/../gen33-probe/probe.js" "$here/probe-from-gen33.diff"
# PROBE_MAX_NUM_SEQS: the pods' --max-num-seqs instead of the bench's 16 (session 59 ran the simulator's own 256); the
# EPP is told it as every bench policy is.
if [ -n "${PROBE_MAX_NUM_SEQS:-}" ]; then
  sed -i "s|maxModelLen: caps.maxModelLen };|maxModelLen: caps.maxModelLen, maxNumSeqs: Number(process.env.PROBE_MAX_NUM_SEQS) };|" "$probe"
  grep -q 'maxNumSeqs: Number(process.env.PROBE_MAX_NUM_SEQS)' "$probe" || { echo "run.sh: could not set maxNumSeqs in the probe" >&2; exit 1; }
fi
mkdir -p /tmp/probe55-logs
sc=$1; cap=$2; rate=$3; dur=$4; seed=$5; tag=$6; shift 6
extra=()
while [ "$1" != "--" ]; do extra+=("$1"); shift; done; shift
for p in "$@"; do
  node "$probe" --root "$root" --scenario "$sc" --cap "$cap" --policy "$p" --seed "$seed" --rate "$rate" --duration "$dur" --tag "$tag" "${extra[@]}" --out "${PROBE_OUT:-$here/results.jsonl}" 2>&1 | tail -1
done
