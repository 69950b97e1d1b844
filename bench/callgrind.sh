#!/usr/bin/env bash
# bench/callgrind.sh: instructions executed (callgrind's Ir, children
# included) by a cachedo hit against `cat small.txt`, and by a miss against
# `true` (sqlite, mem: and --no-cache, to split a miss into its steps), then
# the same misses' syscalls, fsyncs (strace -ff) and page faults
# (/usr/bin/time -f %R) when those tools are there. Instruction counts
# repeat from run to run where wall time does not.
set -eu

. "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || { echo "bench: valgrind not installed" >&2; exit 2; }
bench_init

# ir CMD...: total Ir of CMD and every process it starts and waits for. Each
# call writes into a fresh directory and sums what is there when CMD
# returns: the detached upkeep child a miss may start writes its counts
# later, into that directory only, so it is neither counted here nor later.
ir() {
	local d
	d=$(mktemp -d "$T/cg.XXXXXX")
	valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$d/cg.%p" \
		"$@" >/dev/null 2>"$T/valgrind.err" </dev/null || true
	cat "$d"/cg.* 2>/dev/null | awk '/^summary:/ { s += $2 } END { print s + 0 }'
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
# A first run: PAIRTIME_RUN, new each time, is in the key.
PAIRTIME_RUN=cg-$$-1 ir "$C" -- true >/dev/null
line miss_new "$(ir true)" "$(PAIRTIME_RUN=cg-$$-2 ir "$C" -- true)" "(a key not stored yet)"
# A first mem: miss creates its directory and starts the hourly upkeep.
"$C" -c mem: --refresh -- true >/dev/null 2>&1 </dev/null || true
line miss_mem "$(ir true)" "$(ir "$C" -c mem: --refresh -- true)" "(runner + mem: store)"
line miss_no_cache "$(ir true)" "$(ir "$C" --no-cache -- true)" "(runner only)"

# counts NAME CMD...: syscalls, fsync+fdatasync calls, minor page faults of
# CMD and the command it runs; not of a detached child (one that calls
# setsid but execs nothing: the upkeep, SQLite's checkpoint), which the run
# does not wait for. CMD runs twice (traced, then timed): with COUNTS_NEW
# set, each run gets a PAIRTIME_RUN of its own, so both are first runs.
counts() {
	local name=$1 sc=- fs=- pf= f
	shift
	[ -n "${COUNTS_NEW:-}" ] && export PAIRTIME_RUN=cg-$$-$name-traced
	if command -v strace >/dev/null; then
		rm -rf "$T/st" && mkdir "$T/st"
		strace -ff -o "$T/st/s" "$@" >/dev/null 2>&1 </dev/null || true
		sc=0 fs=0
		for f in "$T/st"/s.*; do
			grep -q '^setsid(' "$f" && ! grep -q '^execve(' "$f" && continue
			sc=$((sc + $(grep -cE '^[a-z_0-9]+\(' "$f" || true)))
			fs=$((fs + $(grep -cE '^f(data)?sync\(' "$f" || true)))
		done
	fi
	[ -n "${COUNTS_NEW:-}" ] && export PAIRTIME_RUN=cg-$$-$name-timed
	[ -x /usr/bin/time ] && pf=$(/usr/bin/time -f %R "$@" 2>&1 >/dev/null </dev/null | tail -1)
	[ -n "${COUNTS_NEW:-}" ] && unset PAIRTIME_RUN
	printf '%-16s %10s %8s %8s\n' "$name" "$sc" "$fs" "${pf:--}"
}

printf '\n%-16s %10s %8s %8s\n' name syscalls fsyncs minflt
counts true true
counts miss_no_cache "$C" --no-cache -- true
counts miss_mem "$C" -c mem: --refresh -- true
# Two in a row: the WAL grows by a miss, and is checkpointed every few.
counts miss_true "$C" --refresh -- true
counts miss_true_again "$C" --refresh -- true
COUNTS_NEW=1 counts miss_new "$C" -- true
