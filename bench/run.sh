#!/usr/bin/env bash
# bench/run.sh [-v] [core|peers|dir|redis|tiers|flight|scale|all]...: time cachedo against
# plain baselines in one run and print a row per target (see bench/README.md).
# Expects an already built binary: $CACHEDO, else build/cachedo.
set -eu

. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = -v ]; then
	BENCH_SHOW=1
	shift
fi
sections=("${@:-core}")
[ "${sections[*]}" = all ] && sections=(core peers dir redis tiers flight scale)
for s in "${sections[@]}"; do
	case $s in
	core | peers | dir | redis | tiers | flight | scale) ;;
	*)
		echo "usage: bash bench/run.sh [-v] [core|peers|dir|redis|tiers|flight|scale|all]..." >&2
		exit 2
		;;
	esac
done

bench_init
FLOOR=$BENCH_ROOT/build/bench/floor
# floor_build: the minimal spawner (bench/floor.c), static when the
# toolchain can link one, like cachedo.
floor_build() {
	[ -x "$FLOOR" ] && [ ! "$BENCH_DIR/floor.c" -nt "$FLOOR" ] && return 0
	local cc=(${CC:-cc} -O2 -std=c11 -Wall -Wextra -o "$FLOOR" "$BENCH_DIR/floor.c")
	"${cc[@]}" -static 2>/dev/null || "${cc[@]}"
}
# floor_musl_build: the same spawner on musl (musl-gcc), static, as
# build/cachedo is when `make deps` built its libraries for musl (Makefile,
# LIBC): glibc's start-up costs ~40 cpuid traps in a virtual machine, which
# this one, like cachedo, does not pay. Fails without musl-gcc.
FLOOR_MUSL=$FLOOR-musl
floor_musl_build() {
	command -v musl-gcc >/dev/null 2>&1 || return 1
	[ -x "$FLOOR_MUSL" ] && [ ! "$BENCH_DIR/floor.c" -nt "$FLOOR_MUSL" ] && return 0
	musl-gcc -O2 -std=c11 -Wall -Wextra -static -o "$FLOOR_MUSL" "$BENCH_DIR/floor.c"
}
BIG_MIB=${BENCH_BIG_MIB:-100}
BIG=hit_${BIG_MIB}m # row name part
big_file() { [ -f big.bin ] || head -c "${BIG_MIB}M" /dev/urandom >big.bin; }

BACKENDS=$("$C" --version 2>/dev/null | sed -n 's/^backends: *//p')
has_backend() { case " $BACKENDS " in *" $1 "*) return 0 ;; esac; return 1; }

# warm ARGS...: run `cachedo ARGS` once to store, then check that it hits.
warm() {
	"$C" "$@" >/dev/null 2>&1 </dev/null || true
	"$C" -v "$@" 2>&1 >/dev/null </dev/null | grep -q '^cachedo: hit'
}

# miss_rows PREFIX MISS_CMD [info]: the floor, then a miss of `true` whose
# target is the floor's ratio + 0.3 (a wrapper cannot go below the floor),
# none with "info"; sets FLOOR_RATIO and MISS_TARGET.
miss_rows() {
	local floor
	FLOOR_RATIO=
	if floor_build && floor=$(bench_own_copy "$FLOOR"); then
		pair "$1.miss_floor" "true" "$floor true"
		FLOOR_RATIO=$R_RATIO
	else
		skip "$1.miss_floor" "cannot build bench/floor.c"
	fi
	if floor_musl_build && floor=$(bench_own_copy "$FLOOR_MUSL"); then
		pair "$1.miss_floor_musl" "true" "$floor true"
	else
		skip "$1.miss_floor_musl" "no musl-gcc"
	fi
	local t=1.6
	[ "${3:-}" = info ] && t=
	[ -n "$FLOOR_RATIO" ] && [ -n "$t" ] && t=$(awk -v f="$FLOOR_RATIO" 'BEGIN { printf "%.2f", f + 0.3 }')
	MISS_TARGET=$t
	PAIR_TARGET=$t pair "$1.miss_true" "true" "$2"
}

# The rows of issue 15's table: a miss against its floor, hits against cat.
section_core() {
	miss_rows core "$C --refresh -- true"
	# A first run of a command: the lookup finds nothing, then it runs and
	# is stored. PAIRTIME_RUN, new in every sample, is in the key.
	PAIR_RUNVAR=1 PAIR_TARGET=$MISS_TARGET pair core.miss_new "true" \
		"$C -c sqlite:$T/new.db -- true"
	local hit="$C --ttl 1h -- cat small.txt"
	if warm --ttl 1h -- cat small.txt; then
		PAIR_TARGET=1.05 pair core.hit_small "cat small.txt" "$hit"
	else
		skip core.hit_small "pre-warmed entry does not hit"
	fi

	big_file
	if warm --ttl 1h -- cat big.bin; then
		PAIR_TARGET=1.15 pair "core.$BIG" "cat big.bin" "$C --ttl 1h -- cat big.bin" 31
	else
		skip "core.$BIG" "pre-warmed entry does not hit"
	fi
	if has_backend dir && warm -c "dir:$T/dircache" --ttl 1h -- cat big.bin; then
		PAIR_TARGET=1.15 pair "core.dir_$BIG" "cat big.bin" \
			"$C -c dir:$T/dircache --ttl 1h -- cat big.bin" 31
	else
		skip "core.dir_$BIG" "backend 'dir' not built or entry does not hit"
	fi
	if has_backend mem && warm -c mem: --ttl 1h -- cat small.txt; then
		pair core.mem_hit_small "cat small.txt" "$C -c mem: --ttl 1h -- cat small.txt"
	else
		skip core.mem_hit_small "backend 'mem' not built or entry does not hit"
	fi
}

# The same rows against a peer memoizer, bkt (BKT=/path/to/bkt), in its own
# cache dir; then its miss against cachedo's, which should be below it.
section_peers() {
	if [ -z "${BKT:-}" ]; then
		skip peers "set BKT=/path/to/bkt to compare with bkt"
		return
	fi
	if [ ! -x "$BKT" ]; then
		skip peers "BKT='$BKT' is not an executable file"
		return
	fi
	local bkt b
	bkt=$(bench_own_copy "$BKT") || return
	b="BKT_CACHE_DIR=$T/bkt exec $bkt"
	miss_rows peers "$b --ttl=1h --force -- true" info
	PAIR_TARGET=1.00 pair peers.miss_vs_cachedo "$b --ttl=1h --force -- true" "$C --refresh -- true"
	PAIR_RUNVAR=1 PAIR_TARGET=1.00 pair peers.miss_new_vs_cachedo \
		"$b --ttl=1h -- true \$PAIRTIME_RUN" "exec $C -c sqlite:$T/new2.db -- true \$PAIRTIME_RUN"
	BKT_CACHE_DIR=$T/bkt "$bkt" --ttl=1h -- cat small.txt >/dev/null 2>&1 || true
	pair peers.hit_small "cat small.txt" "$b --ttl=1h -- cat small.txt"
	big_file
	BKT_CACHE_DIR=$T/bkt "$bkt" --ttl=1h -- cat big.bin >/dev/null 2>&1 || true
	pair "peers.$BIG" "cat big.bin" "$b --ttl=1h -- cat big.bin" 31
}

section_dir() {
	local b url
	for b in dir mem; do
		if ! has_backend $b; then
			skip "$b.$BIG" "backend '$b' not built (cachedo --version)"
			continue
		fi
		big_file
		if [ $b = dir ]; then url=dir:$T/dircache; else url=mem:; fi
		if ! warm -c "$url" --ttl 1h -- cat big.bin; then
			skip "$b.$BIG" "pre-warmed entry does not hit"
			continue
		fi
		PAIR_TARGET=1.2 pair "$b.${BIG}_null" "cat big.bin" "$C -c $url --ttl 1h -- cat big.bin" 31
		PAIR_TARGET=1.1 PAIR_OUT=pipe pair "$b.${BIG}_pipe" "cat big.bin" \
			"$C -c $url --ttl 1h -- cat big.bin" 51
	done

	if has_backend mem && warm --ttl 1h -- cat small.txt && warm -c mem: --ttl 1h -- cat small.txt; then
		pair mem_vs_sqlite.hit_small "$C --ttl 1h -- cat small.txt" "$C -c mem: --ttl 1h -- cat small.txt"
		PAIR_TARGET=1.10 pair mem.hit_small "cat small.txt" "$C -c mem: --ttl 1h -- cat small.txt"
	else
		skip mem.hit_small "backend 'mem' not built or entry does not hit"
	fi
}

# redis_start: starts a throw-away server on a free loopback port; sets R_PORT R_PID.
redis_start() {
	local i
	for i in 1 2 3 4 5; do
		R_PORT=$((20000 + RANDOM % 20000))
		(exec 3<>/dev/tcp/127.0.0.1/$R_PORT) 2>/dev/null && continue
		redis-server --port $R_PORT --bind 127.0.0.1 --save '' --appendonly no \
			--logfile "$T/redis-$R_PORT.log" >/dev/null 2>&1 &
		R_PID=$!
		BENCH_PIDS+=("$R_PID")
		for _ in $(seq 50); do
			redis_ping && return 0
			sleep 0.1
		done
	done
	return 1
}

redis_ping() {
	local reply
	exec 3<>"/dev/tcp/127.0.0.1/$R_PORT" || return 1
	printf 'PING\r\n' >&3
	read -r -t 2 reply <&3 || true
	exec 3<&-
	[ "${reply%$'\r'}" = +PONG ]
} 2>/dev/null

# fresh_dirs NAME N: cache and runtime dirs for each PAIRTIME_RUN of N pairs.
fresh_dirs() {
	local i
	for ((i = 0; i < 2 * ($2 + ${PAIR_WARMUP:-3}); i++)); do
		mkdir -p "$T/$1/$i/run"
		chmod 700 "$T/$1/$i" "$T/$1/$i/run"
	done
}

section_redis() {
	if ! has_backend redis; then
		skip redis "backend 'redis' not built (cachedo --version)"
		return
	fi
	if ! command -v redis-server >/dev/null || ! redis_start; then
		skip redis "cannot start redis-server"
		return
	fi
	local url=redis://127.0.0.1:$R_PORT
	local cmd="$C -q -c $url --ttl 1h -- cat small.txt"
	if warm -c "$url" --ttl 1h -- cat small.txt; then
		PAIR_TARGET=1.4 pair redis.hit_small "cat small.txt" "$cmd"
	else
		skip redis.hit_small "pre-warmed entry does not hit"
	fi

	# Stopped server (connection refused). "warm": the failure is already
	# remembered, as for most invocations; "first": fresh cache and runtime
	# dirs per run, so each pays the first failed connect.
	kill "$R_PID"
	wait "$R_PID" 2>/dev/null || true
	fresh_dirs first 51
	PAIR_ADDED_MS=20 pair redis.stopped "cat small.txt" "$cmd" 51
	PAIR_RUNVAR=1 pair redis.stopped_first "cat small.txt" \
		"XDG_CACHE_HOME=$T/first/\$PAIRTIME_RUN XDG_RUNTIME_DIR=$T/first/\$PAIRTIME_RUN/run exec $cmd" 51

	# Frozen server (SIGSTOP): accepts connections, never answers.
	if ! redis_start; then
		skip redis.frozen "cannot start redis-server"
		return
	fi
	url=redis://127.0.0.1:$R_PORT
	cmd="$C -q -c $url --ttl 1h -- cat small.txt"
	warm -c "$url" --ttl 1h -- cat small.txt || true
	kill -STOP "$R_PID"
	# A cachedo that waits forever is killed after PAIR_TIMEOUT seconds.
	fresh_dirs frozen 5
	PAIR_WARMUP=0 PAIR_RUNVAR=1 pair redis.frozen_first "cat small.txt" \
		"XDG_CACHE_HOME=$T/frozen/\$PAIRTIME_RUN XDG_RUNTIME_DIR=$T/frozen/\$PAIRTIME_RUN/run exec $cmd" 5
	PAIR_ADDED_MS=20 pair redis.frozen "cat small.txt" "$cmd" 51
	kill -CONT "$R_PID"
}

# A near SQLite tier in front of a redis-server: a near hit against a
# one-tier hit; a far hit that is copied into a fresh near tier against a
# Redis hit followed by a store into a fresh SQLite cache.
section_tiers() {
	if ! has_backend redis; then
		skip tiers "backend 'redis' not built (cachedo --version)"
		return
	fi
	if ! command -v redis-server >/dev/null || ! redis_start; then
		skip tiers "cannot start redis-server"
		return
	fi
	local far=redis://127.0.0.1:$R_PORT one=sqlite:$T/one.db near=sqlite:$T/near.db
	if warm -c "$one" --ttl 1h -- cat small.txt &&
		warm -c "$near" -c "$far" --ttl 1h -- cat small.txt; then
		PAIR_TARGET=1.03 pair tiers.near_hit "$C -c $one --ttl 1h -- cat small.txt" \
			"$C -c $near -c $far --ttl 1h -- cat small.txt"
	else
		skip tiers.near_hit "pre-warmed entry does not hit"
	fi
	mkdir -p "$T/bf" && chmod 700 "$T/bf"
	PAIR_TARGET=1.00 PAIR_RUNVAR=1 pair tiers.far_hit_backfill \
		"$C -q -c $far --ttl 1h -- cat small.txt >/dev/null && exec $C -q -c sqlite:$T/bf/b\$PAIRTIME_RUN.db --ttl 1h -- cat small.txt" \
		"exec $C -q -c sqlite:$T/bf/c\$PAIRTIME_RUN.db -c $far --ttl 1h -- cat small.txt" 101
}

section_flight() {
	local copies=${BENCH_FLIGHT_COPIES:-20} n=${BENCH_FLIGHT_N:-5} runs
	cat >slow.sh <<-'EOF'
		#!/bin/sh
		echo run >>"$1"
		sleep 1
	EOF
	chmod +x slow.sh
	"$C" -- true >/dev/null 2>&1 || true # create the cache before the stampede
	: >cand.count
	# --env PAIRTIME_RUN hashes only that variable: a fresh key per sample,
	# shared by the sample's concurrent copies.
	if ! PAIR_WARMUP=0 PAIR_RUNVAR=1 PAIR_JOBS=$copies measure "./slow.sh base.count" \
		"$C --env PAIRTIME_RUN -- ./slow.sh cand.count" "$n"; then
		skip flight "pairtime failed"
		return
	fi
	runs=$(wc -l <cand.count)
	PAIR_TARGET=1.15 verdict
	[ "$runs" -eq "$n" ] || V_VERDICT=FAIL
	row "flight.${copies}x_1s" "$V_TARGET" "$V_VERDICT" \
		"executions: $runs for $n samples of $copies calls (want $n)"
	show "./slow.sh base.count" "$copies x $C --env PAIRTIME_RUN -- ./slow.sh cand.count"
}

. "$BENCH_DIR/scale.sh"

echo "# $("$C" --version 2>/dev/null | head -1); backends: ${BACKENDS:-?}; $(nproc) CPUs; $(uname -sr)"
bench_header
for s in "${sections[@]}"; do
	"section_$s"
done
bench_summary
