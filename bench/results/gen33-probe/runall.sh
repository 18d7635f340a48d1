#!/bin/bash
# Sequential runs of the probe matrix for one seed. Usage: runall.sh SEED [scenario-filter]
cd "$(dirname "$0")"
SEED=$1; F=${2:-.}
OUT=${OUT:-$PWD/results.jsonl}
run() { echo "== $(date +%T) $*"; node probe.js --seed $SEED --out $OUT "$@" 2>&1 | grep -v '^\s*$' | tail -2; }
RAGP="kvroute kvroute-precise approx-prefix sglang least-request round-robin"
SESP="kvroute kvroute-precise approx-prefix session-hash least-request round-robin"
MIXP="kvroute kvroute-precise approx-prefix session-hash sglang round-robin"
if echo rag | grep -q "$F"; then
for cell in "ample 5.6 60" "ample 7.9 85" "tight 4.0 60" "tight 5.6 85"; do set -- $cell
  for p in $RAGP; do run --scenario rag --cap $1 --rate $2 --tag load$3 --duration 20 --policy $p; done; done
fi
if echo agent | grep -q "$F"; then
  for p in $SESP; do run --scenario agent --cap tight --policy $p; done
fi
if echo mixed | grep -q "$F"; then
for cap in ample tight; do for p in $MIXP; do run --scenario mixed --cap $cap --rate 4 --duration 30 --policy $p; done; done
fi
