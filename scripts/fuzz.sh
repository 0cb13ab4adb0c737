#!/usr/bin/env bash
# fuzz.sh FUZZ_BUILD_DIR SECONDS: runs every libFuzzer target for SECONDS each, on a copy of its seed corpus
# (the checked-in corpus is never modified). A crash leaves its input in FUZZ_BUILD_DIR/crashes/: add it to
# tests/fuzz/corpus/<target>/ as a regression seed.
set -euo pipefail
build=$1
seconds=${2:-20}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$build/crashes"
trap 'rmdir /tmp/runra-fuzz-ops-* 2>/dev/null || true' EXIT # fuzz_ops jails itself in one (see it)
for target in decode session_rx path ops; do
	work="$build/corpus-$target"
	rm -rf "$work"
	cp -r "$repo/tests/fuzz/corpus/$target" "$work"
	echo "fuzz: $target for ${seconds}s"
	# Replaying the seeds alone first proves every kept crash input stays fixed.
	rc=0
	"$build/fuzz_$target" -runs=0 "$repo/tests/fuzz/corpus/$target" 2>"$build/fuzz_$target.seeds.log" || rc=$?
	if [[ $rc == 77 ]]; then # fuzz_ops without root: it cannot jail itself, so it does not run
		echo "fuzz: $target skipped: $(tail -1 "$build/fuzz_$target.seeds.log")"
		continue
	fi
	[[ $rc == 0 ]] || { tail -30 "$build/fuzz_$target.seeds.log"; exit 1; }
	"$build/fuzz_$target" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=4096 \
		-artifact_prefix="$build/crashes/$target-" "$work" 2>"$build/fuzz_$target.log" ||
		{ tail -40 "$build/fuzz_$target.log"; exit 1; }
	grep -E '^(#[0-9]+|Done).*' "$build/fuzz_$target.log" | tail -1
done
