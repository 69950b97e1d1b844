#!/usr/bin/env bash
# bench/callgrind.sh: instructions executed (callgrind's Ir, children
# included) by a cachedo hit against `cat small.txt`, and by a miss against
# `true`. Instruction counts repeat from run to run where wall time does not.
set -eu

. "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "bench: valgrind not installed" >&2; exit 2; }
bench_init

# ir CMD...: total Ir of CMD and every process it starts.
ir() {
	rm -f "$T"/cg.*
	valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$T/cg.%p" \
		"$@" >/dev/null 2>"$T/valgrind.err" </dev/null || true
	awk '/^summary:/ { s += $2 } END { print s + 0 }' "$T"/cg.*
}

# line NAME BASELINE_IR CANDIDATE_IR [NOTE]
line() {
	printf '%-16s %14d %14d %9.2fx%s\n' "$1" "$2" "$3" "$(awk -v b="$2" -v c="$3" 'BEGIN { print c / b }')" "${4:+  $4}"
}

printf '%-16s %14s %14s %10s\n' name baseline_Ir candidate_Ir ratio
# valgrind puts its preload library in LD_PRELOAD, which cachedo hashes by
# default, so the entry is stored under valgrind too before it is measured.
ir "$C" --ttl 1h -- cat small.txt >/dev/null
hit=$(ir "$C" --ttl 1h -- cat small.txt)
valgrind --tool=callgrind --callgrind-out-file=/dev/null "$C" -v --ttl 1h -- cat small.txt \
	2>&1 >/dev/null </dev/null | grep -q '^cachedo: hit' && note= || note="(not a hit!)"
line hit_small "$(ir cat small.txt)" "$hit" "$note"
line miss_true "$(ir true)" "$(ir "$C" --refresh -- true)"
