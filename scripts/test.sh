#!/usr/bin/env bash
# test.sh [BUILD_DIR]: every test, against both flavors (`make test` builds them first):
# lint, artifact checks, unit tests (ctest), black-box tests (pytest) as a normal process, as PID 1 and in a
# minimal root filesystem, and the fuzzers for a bounded time.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$repo/build}")
release="$build/release/runra-agent"
dev="$build/dev/runra-agent"
cd "$repo"

section() { printf '\n== %s\n' "$*"; }

section "lint"
scripts/lint.sh

section "release artifact"
kind=$(file -b "$release")
echo "$release: $kind"
[[ "$kind" == *"statically linked"* ]] || { echo "not statically linked" >&2; exit 1; }
size=$(stat -c %s "$release")
echo "stripped size: $size bytes (limit 1048576)"
((size < 1048576)) || { echo "release binary is 1 MiB or more" >&2; exit 1; }

section "unit tests: release (musl, static)"
ctest --test-dir "$build/release" --output-on-failure
section "unit tests: dev (ASan + UBSan)"
ctest --test-dir "$build/dev" --output-on-failure

pytest() { /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@"; }
section "black-box: release"
RUNRA_AGENT_BIN="$release" RUNRA_AGENT_STATIC=1 pytest tests/e2e
section "black-box: dev (ASan + UBSan)"
RUNRA_AGENT_BIN="$dev" pytest tests/e2e
section "black-box: release as PID 1 of its own PID namespace"
RUNRA_AGENT_BIN="$release" RUNRA_AGENT_STATIC=1 RUNRA_E2E_PID1=1 pytest tests/e2e --deselect tests/e2e/test_pid1.py

section "fuzz (${FUZZ_SECONDS:-20}s per target)"
scripts/fuzz.sh "$build/fuzz" "${FUZZ_SECONDS:-20}"
