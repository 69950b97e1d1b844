# bench/lib.sh: paired timing for cachedo's benchmarks (sourced by bash).
#
#   pair NAME BASELINE_CMD CANDIDATE_CMD [N]
#
# runs the two command lines alternately N times (default 201) through
# build/bench/pairtime and prints one row:
#
#   NAME  baseline_median  candidate_median  ratio_median  target  VERDICT  [p10-p90, n]
#
# Knobs, set as prefix assignments (PAIR_TARGET=1.10 pair ...):
#   PAIR_TARGET    ratio limit: PASS when ratio_median <= it
#   PAIR_ADDED_MS  added-time limit: PASS when candidate - baseline <= it (ms)
#   PAIR_OUT       null (default) | pipe | inherit: where the commands' stdout goes
#   PAIR_JOBS      run the candidate as this many concurrent copies per sample
#   PAIR_RUNVAR    1: export PAIRTIME_RUN, unique per sample, to the commands
#   PAIR_WARMUP    warm-up pairs not counted (default 3)
#   PAIR_TIMEOUT   seconds after which a sample's processes are killed (default 60)
# Without a target the verdict is "-" (for information).
# BENCH_SHOW=1 prints the two command lines under each row.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(dirname "$BENCH_DIR")
PAIRTIME=${PAIRTIME:-$BENCH_ROOT/build/bench/pairtime}
BENCH_PASS=0 BENCH_FAIL=0 BENCH_SKIP=0 BENCH_INFO=0

# Builds the timing helper when it is missing or older than its source.
pairtime_build() {
	if [ ! -x "$PAIRTIME" ] || [ "$BENCH_DIR/pairtime.c" -nt "$PAIRTIME" ]; then
		mkdir -p "$(dirname "$PAIRTIME")" &&
			${CC:-cc} -O2 -std=c11 -Wall -Wextra -o "$PAIRTIME" "$BENCH_DIR/pairtime.c"
	fi
}

# bench_init: finds cachedo (sets C), builds pairtime, and moves into a
# private world: temp HOME and XDG dirs (T), a tmpfs runtime dir (RUN), no
# CACHEDO_* settings of the user's, cwd $T/work holding small.txt (100 bytes).
# Processes listed in BENCH_PIDS are ended on exit.
bench_init() {
	C=${CACHEDO:-$BENCH_ROOT/build/cachedo}
	case $C in
	/*) ;;
	*/*) C=$PWD/$C ;;
	*) C=$(command -v "$C" || echo "$C") ;;
	esac
	if [ ! -x "$C" ]; then
		echo "bench: no cachedo binary at '$C' (run make, or set CACHEDO)" >&2
		exit 2
	fi
	pairtime_build || exit 2

	T=$(mktemp -d "${TMPDIR:-/tmp}/cachedo-bench.XXXXXX")
	RUN=$(mktemp -d /dev/shm/cachedo-bench.XXXXXX 2>/dev/null) || RUN=$T/run
	BENCH_PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$T/home" "$T/cache" "$T/config" "$T/work" "$RUN"
	chmod 700 "$RUN"
	for v in $(compgen -v CACHEDO_); do unset "$v"; done
	export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_CONFIG_HOME=$T/config XDG_RUNTIME_DIR=$RUN
	cd "$T/work" || exit 2
	head -c 100 /dev/urandom | base64 -w0 | head -c 99 >small.txt
	echo >>small.txt
	C=$(bench_own_copy "$C") || exit 2
}

# bench_own_copy PATH: copies the program PATH into $T/bin and prints the
# copy's path. The rows time the copies: how a binary sits in the page
# cache moves its start-up, and so the ratios. The same cachedo binary,
# written anew (as make or an install leaves it) or read back from disk
# (after a reboot, or once the kernel dropped its pages), measured 2.34x
# and 2.49x on core.miss_true and 0.92x and 1.04x on core.hit_small in one
# run; small dynamic programs such as true and cat did not move. Each run
# now starts from the first state, whatever the build's age.
bench_own_copy() {
	mkdir -p "$T/bin" &&
		cp "$1" "$T/bin/${1##*/}" &&
		echo "$T/bin/${1##*/}"
}

bench_cleanup() {
	local p
	for p in "${BENCH_PIDS[@]}"; do
		kill -CONT "$p" 2>/dev/null || true
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$T" "$RUN"
}

# measure BASELINE CANDIDATE [N]: sets R_BASE R_CAND (ms), R_RATIO R_P10 R_P90, R_N.
measure() {
	local args=(-n "${3:-201}" -w "${PAIR_WARMUP:-3}" -o "${PAIR_OUT:-null}" -t "${PAIR_TIMEOUT:-60}")
	[ -n "${PAIR_JOBS:-}" ] && args+=(-j "$PAIR_JOBS")
	[ "${PAIR_RUNVAR:-0}" = 1 ] && args+=(-r)
	local line
	line=$("$PAIRTIME" "${args[@]}" "$1" "$2") || return 1
	read -r R_BASE R_CAND R_RATIO R_P10 R_P90 R_N _ <<<"$line"
}

# row NAME TARGET_TEXT VERDICT [NOTE]: prints the result row of the last measure.
row() {
	printf '%-24s %10.3fms %10.3fms %7.3fx %8s  %-4s  [p10 %.3f p90 %.3f, n=%d]%s\n' \
		"$1" "$R_BASE" "$R_CAND" "$R_RATIO" "$2" "$3" "$R_P10" "$R_P90" "$R_N" "${4:+ $4}"
	case $3 in
	PASS) BENCH_PASS=$((BENCH_PASS + 1)) ;;
	FAIL) BENCH_FAIL=$((BENCH_FAIL + 1)) ;;
	*) BENCH_INFO=$((BENCH_INFO + 1)) ;;
	esac
}

# verdict: PASS/FAIL/- for the last measure against PAIR_TARGET or PAIR_ADDED_MS;
# sets V_TARGET (the target as shown) and V_VERDICT.
verdict() {
	V_TARGET=- V_VERDICT=-
	if [ -n "${PAIR_TARGET:-}" ]; then
		V_TARGET="<=${PAIR_TARGET}x"
		V_VERDICT=$(awk -v r="$R_RATIO" -v t="$PAIR_TARGET" 'BEGIN { print (r <= t ? "PASS" : "FAIL") }')
	elif [ -n "${PAIR_ADDED_MS:-}" ]; then
		V_TARGET="+${PAIR_ADDED_MS}ms"
		V_VERDICT=$(awk -v b="$R_BASE" -v c="$R_CAND" -v t="$PAIR_ADDED_MS" \
			'BEGIN { print (c - b <= t ? "PASS" : "FAIL") }')
	fi
}

pair() {
	local name=$1 base=$2 cand=$3 n=${4:-201}
	if ! measure "$base" "$cand" "$n"; then
		skip "$name" "pairtime failed"
		return
	fi
	verdict
	local note=
	[ -n "${PAIR_ADDED_MS:-}" ] &&
		note=$(awk -v b="$R_BASE" -v c="$R_CAND" 'BEGIN { printf "added %+.3fms", c - b }')
	row "$name" "$V_TARGET" "$V_VERDICT" "$note"
	show "$base" "$cand"
}

show() {
	[ "${BENCH_SHOW:-0}" = 1 ] || return 0
	printf '    baseline:  %s\n    candidate: %s\n' "$1" "$2"
	[ "${PAIR_OUT:-null}" = pipe ] && echo "    (stdout of each into a pipe drained like '| cat >/dev/null')"
	return 0
}

# skip NAME REASON
skip() {
	printf '%-24s %12s %12s %8s %8s  %s\n' "$1" - - - - "skipped: $2"
	BENCH_SKIP=$((BENCH_SKIP + 1))
}

bench_header() {
	printf '%-24s %12s %12s %8s %8s  %s\n' name baseline candidate ratio target verdict
}

bench_summary() {
	printf 'summary: %d PASS, %d FAIL, %d skipped, %d info (benchmarks report; they are not tests)\n' \
		"$BENCH_PASS" "$BENCH_FAIL" "$BENCH_SKIP" "$BENCH_INFO"
}
