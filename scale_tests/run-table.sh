#!/usr/bin/env bash
# Re-measure every figure of the README's Performance table, one benchmark after another (never two at once: they
# would share the cores), then promote the results to scale_tests/results/latest/ and rewrite the README table.
# Sizes fit a busy 2-core machine in about 15 minutes; each file records its size. Full sizes: see
# scale_tests/README.md. Usage: scale_tests/run-table.sh [--no-promote]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
run() { echo "== $*" >&2; nice "$PY" -m "$@" >/dev/null; }
run scale_tests.bench_queue
run scale_tests.bench_decide --sizes 1000,5000,15000
run scale_tests.bench_cache --scale 0.25
run scale_tests.bench_kubesim --nodes 20000 --pods 30000 --http-pods 3000 --updates 5000
run scale_tests.bench_metrics --duration 91
run scale_tests.bench_jobset --sizes 1000,5000
if [[ "${1:-}" != "--no-promote" ]]; then
  "$PY" -m scale_tests.report --promote bench_queue bench_decide bench_cache bench_kubesim bench_metrics bench_jobset
  "$PY" -m scale_tests.report --write
fi
