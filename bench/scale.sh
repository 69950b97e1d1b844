# bench/scale.sh: the `scale` section of bench/run.sh (sourced by it).
#
# Fills caches of 10k, 100k (and, with SCALE_N=1000000, 1M) entries on
# sqlite, dir and redis with build/bench/fill (bench/fill.c: real entries
# written through the library), then measures what touches the whole
# cache. SCALE_N caps the sizes (default 100000); SCALE_BACKENDS picks the
# backends (default "sqlite dir redis"); SCALE_PAIRS the pairs of the
# hit/miss rows (default 101; with 51, sqlite's 1M miss row ranged from
# 1.00x to 1.17x over five runs this week); SCALE_WORST_ROUNDS the rounds
# of the worst-of-50 rows (default 5).

FILL=${SCALE_FILL:-$BENCH_ROOT/build/bench/fill}

# fill_build: the filler is built by make, against build/libcachedo.a.
fill_build() {
	[ -n "${SCALE_FILL:-}" ] && return 0
	[ -x "$FILL" ] && [ ! "$BENCH_DIR/fill.c" -nt "$FILL" ] &&
		[ ! "$BENCH_ROOT/build/libcachedo.a" -nt "$FILL" ] && return 0
	make -s -C "$BENCH_ROOT" build/bench/fill >&2
}

# now_s: seconds since the epoch, with microseconds, from bash itself.
now_s() { echo "${EPOCHREALTIME/,/.}"; }

# secs_since T0: seconds elapsed since now_s printed T0.
secs_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.3f", b - a }'; }

# trow NAME VALUE UNIT TARGET [NOTE]: a row of one measured value against
# a limit (TARGET empty or -: for information).
trow() {
	local v=-
	if [ -n "$4" ] && [ "$4" != - ]; then
		v=$(awk -v x="$2" -v t="$4" 'BEGIN { print (x <= t ? "PASS" : "FAIL") }')
	fi
	printf '%-30s %12s %-4s %10s  %-4s%s\n' "$1" "$2" "$3" "<=${4:--}" "$v" "${5:+  $5}"
	case $v in
	PASS) BENCH_PASS=$((BENCH_PASS + 1)) ;;
	FAIL) BENCH_FAIL=$((BENCH_FAIL + 1)) ;;
	*) BENCH_INFO=$((BENCH_INFO + 1)) ;;
	esac
}

# upkeep_due: backdates every upkeep stamp under the bench's dirs by two
# hours, so the next miss on any cache finds its upkeep deadline passed.
upkeep_due() {
	find "$T" "$RUN" -type f \( -name '*-stats' -o -name '*-upkeep' \) \
		-exec touch -d '-2 hours' {} + 2>/dev/null || true
}

# upkeep_wait: waits until no detached upkeep or tidy child holds a cache
# of the bench's (each holds its cache's P-usage or P-tidy lock until done).
upkeep_wait() {
	local f
	find "$T" "$RUN" -type f \( -name '*-usage' -o -name '*-tidy' \) 2>/dev/null |
		while IFS= read -r f; do flock -x "$f" true 2>/dev/null || true; done
}

# stats_inodes: the inode and path of every cache's P-stats file, which
# an upkeep replaces (rename) when it folds the usage records.
stats_inodes() {
	find "$T" "$RUN" -type f -name '*-stats' -printf '%i %p\n' 2>/dev/null | sort
}

# upkeep_settle BEFORE: waits (60 s at most) until an upkeep replaced one
# of the P-stats files listed in BEFORE (stats_inodes), then until no
# upkeep or tidy child holds a cache (upkeep_wait).
upkeep_settle() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(stats_inodes)" != "$1" ] && break
		sleep 0.1
	done
	upkeep_wait
}

# series CMD N WARM: N consecutive runs of CMD timed by pairtime (spawn to
# wait, no shell work inside a sample), just after 3 untimed runs of WARM;
# sets W_WORST W_MEDIAN (ms) and W_AT, the 1-based position of the worst.
series() {
	local times
	times=$("$PAIRTIME" -s "$2" "$1" "$3")
	W_AT=$(awk '$1 > w { w = $1; at = NR } END { print at + 0 }' <<<"$times")
	read -r W_WORST W_MEDIAN < <(sort -g <<<"$times" |
		awk '{ v[NR] = $1 } END { printf "%.3f %.3f\n", v[NR], v[int((NR + 1) / 2)] }')
}

# misses_worst URL N: N consecutive misses (--refresh) with every upkeep
# deadline passed first (the first miss starts the upkeep child); before
# them, two controls: N runs of bare `true`, what the machine alone gives,
# and the same N misses with no upkeep due (after any earlier child is
# done); after them, waits for that upkeep to be done. Each series starts
# warm: after a few hits of the same cache (a hit never starts the upkeep),
# or runs of `true`. Sets W_WORST W_MEDIAN W_AT, C_WORST C_MEDIAN C_AT and
# B_WORST B_MEDIAN B_AT (ms).
misses_worst() {
	local before miss="$C -q -c $1 --refresh -- true"
	local hit="$C -q -c $1 --ttl 1h -- cat small.txt"
	upkeep_wait
	series true "$2" true
	B_WORST=$W_WORST B_MEDIAN=$W_MEDIAN B_AT=$W_AT
	series "$miss" "$2" "$hit"
	C_WORST=$W_WORST C_MEDIAN=$W_MEDIAN C_AT=$W_AT
	upkeep_wait
	upkeep_due
	before=$(stats_inodes)
	series "$miss" "$2" "$hit"
	case $1 in
	redis*) ;; # counters on the server: no upkeep
	*) upkeep_settle "$before" ;;
	esac
}

# ratio A B: A / B to two places.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# median_of V...: the median of the values (the lower middle of an even
# count).
median_of() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# worst_rows P URL: misses_worst URL 50, SCALE_WORST_ROUNDS times (default
# 5), each round with every upkeep deadline passed anew; prints the three
# rows, each the median over the rounds of worst / median, with every
# round's ratio and the position of its worst in the note.
worst_rows() {
	local p=$1 url=$2 i rounds=${SCALE_WORST_ROUNDS:-5}
	local w=() c=() b=() wn= cn= bn=
	for ((i = 1; i <= rounds; i++)); do
		misses_worst "$url" 50
		w+=("$(ratio "$W_WORST" "$W_MEDIAN")") wn+=" ${w[-1]}@$W_AT"
		c+=("$(ratio "$C_WORST" "$C_MEDIAN")") cn+=" ${c[-1]}@$C_AT"
		b+=("$(ratio "$B_WORST" "$B_MEDIAN")") bn+=" ${b[-1]}@$B_AT"
	done
	trow "$p.upkeep_miss" "$(median_of "${w[@]}")" x 1.5 \
		"median of $rounds rounds of 50 misses, upkeep due; worst/median@its miss:$wn"
	trow "$p.upkeep_miss_control" "$(median_of "${c[@]}")" x - \
		"the same 50 just before each round, none due:$cn"
	trow "$p.upkeep_miss_true" "$(median_of "${b[@]}")" x - \
		"50 runs of bare true before those:$bn"
}

# list_measure URL: --list's first entry line and whole output, in s, and
# its peak RSS in MiB; sets L_FIRST L_WHOLE L_RSS L_LINES.
list_measure() {
	local t0
	t0=$(now_s)
	/usr/bin/time -f %M -o "$T/list.rss" "$C" -c "$1" --list </dev/null 2>/dev/null |
		{
			IFS= read -r _ && IFS= read -r _ && now_s >"$T/list.first"
			echo $(($(wc -l) + 2)) >"$T/list.lines"
		}
	L_WHOLE=$(secs_since "$t0")
	L_FIRST=$(awk -v a="$t0" '{ printf "%.3f", $1 - a }' "$T/list.first" 2>/dev/null || echo -)
	L_RSS=$(awk '{ printf "%.1f", $1 / 1024 }' "$T/list.rss" 2>/dev/null || echo -)
	L_LINES=$(cat "$T/list.lines" 2>/dev/null || echo 0)
}

# timed VAR CMD...: runs CMD, sets VAR to its wall time in s.
timed() {
	local t0 var=$1
	shift
	t0=$(now_s)
	"$@" </dev/null >/dev/null 2>&1 || true
	printf -v "$var" '%s' "$(secs_since "$t0")"
}

# cache_bytes URL: the entries' bytes as --stats --json says.
cache_bytes() {
	"$C" -c "$1" --stats --json 2>/dev/null | tr ',{}' '\n\n\n' |
		sed -n 's/^ *"bytes": *\([0-9]*\).*/\1/p' | head -1
}

# side_files URL: files cachedo keeps besides the dir backend's entries,
# under the bench's cache, runtime and config dirs and /tmp lock dirs.
side_files() {
	find "$T" "$RUN" /tmp/cachedo-locks-"$(id -u)" -type f 2>/dev/null |
		grep -v -e "/work/" -e '/v1/[0-9a-f][0-9a-f]/[0-9a-f]\{64\}$' \
			-e '\.rss$' -e '\.first$' -e '\.lines$' -e '/redis-[0-9]*\.log$' | wc -l
}

# scale_limits BACKEND: sets the targets of issue 14 for BACKEND.
scale_limits() {
	case $1 in
	sqlite) LIM_EVICT=10 LIM_GC=1 LIM_FIRST=0.5 LIM_WHOLE=10 LIM_STATS=0.2 ;;
	dir) LIM_EVICT=30 LIM_GC=10 LIM_FIRST=2 LIM_WHOLE=30 LIM_STATS=5 ;;
	redis) LIM_EVICT=30 LIM_GC=- LIM_FIRST=2 LIM_WHOLE=60 LIM_STATS=1 ;;
	esac
}

# scale_rows BACKEND N URL ONE: every row at N entries; URL holds N
# entries, ONE a single one.
scale_rows() {
	local b=$1 n=$2 url=$3 one=$4 p=scale.$1.$2 before after bytes
	local pairs=${SCALE_PAIRS:-101}
	scale_limits "$b"
	warm -c "$url" --ttl 1h -- cat small.txt || true
	warm -c "$one" --ttl 1h -- cat small.txt || true
	PAIR_TARGET=1.05 pair "$p.hit" "$C -q -c $one --ttl 1h -- cat small.txt" \
		"$C -q -c $url --ttl 1h -- cat small.txt" "$pairs"
	PAIR_TARGET=1.05 pair "$p.miss" "$C -q -c $one --refresh -- true" \
		"$C -q -c $url --refresh -- true" "$pairs"
	if [ "$b" = sqlite ]; then
		# A first run: its key is new, the key filter (PATH-keys) says so.
		# PAIRTIME_RUN counts from 1 in every row: n keeps the keys of
		# this size's row apart from the smaller sizes' ones.
		PAIR_RUNVAR=1 PAIR_TARGET=1.05 pair "$p.first_run" "$C -q -c $one -- true $n" \
			"$C -q -c $url -- true $n" "$pairs"
	fi
	worst_rows "$p" "$url"
	if [ "$b" != redis ]; then
		timed G "$C" -q -c "$url" --gc
		trow "$p.gc" "$G" s "$LIM_GC" "nothing expired"
	fi
	if [ "$b" = sqlite ]; then
		# Making the key filter anew (--gc makes a missing one): a walk of
		# an index under the write lock, which misses wait for.
		rm -f "${url#sqlite:}-keys"
		timed G "$C" -q -c "$url" --gc
		if [ -f "${url#sqlite:}-keys" ]; then
			trow "$p.filter" "$G" s "$LIM_GC" "--gc making the key filter"
		else
			skip "$p.filter" "--gc made no key filter"
		fi
	fi
	list_measure "$url"
	trow "$p.list_first" "$L_FIRST" s "$LIM_FIRST" "first entry line"
	trow "$p.list_whole" "$L_WHOLE" s "$LIM_WHOLE" "$L_LINES lines"
	trow "$p.list_rss" "$L_RSS" MiB 64
	timed S "$C" -q -c "$url" --stats
	trow "$p.stats" "$S" s "$LIM_STATS"
	before=$(side_files)
	for i in $(seq 20); do
		"$C" -q -c "$url" -- echo "distinct $n $i" >/dev/null 2>&1 </dev/null || true
	done
	sleep 1 # detached upkeep or refresh children
	after=$(side_files)
	trow "$p.side_files" "$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", (a - b) / 20 }')" \
		files 0 "per distinct command ($before -> $after over 20)"
	bytes=$(cache_bytes "$url")
	if [ -n "$bytes" ]; then
		timed E "$C" -q -c "$url" --gc --max-size $((bytes / 2))
		after=$(cache_bytes "$url")
		trow "$p.evict_half" "$E" s "$LIM_EVICT" "$bytes -> ${after:-?} bytes (limit $((bytes / 2)))"
	else
		skip "$p.evict_half" "no byte count from --stats --json"
	fi
}

section_scale() {
	local max=${SCALE_N:-100000} b n have url one t0 sizes=()
	for n in 10000 100000 1000000; do
		[ "$n" -le "$max" ] && sizes+=("$n")
	done
	if ! fill_build; then
		skip scale "cannot build build/bench/fill"
		return
	fi
	for b in ${SCALE_BACKENDS:-sqlite dir redis}; do
		if ! has_backend "$b"; then
			skip "scale.$b" "backend '$b' not built (cachedo --version)"
			continue
		fi
		case $b in
		sqlite) url=sqlite:$T/scale.db one=sqlite:$T/one.db ;;
		dir) url=dir:$T/scale-dir one=dir:$T/one-dir ;;
		redis)
			if ! command -v redis-server >/dev/null || ! redis_start; then
				skip scale.redis "cannot start redis-server"
				continue
			fi
			url=redis://127.0.0.1:$R_PORT/0 one=redis://127.0.0.1:$R_PORT/1
			;;
		esac
		"$FILL" "$one" 1 || true
		have=0
		for n in "${sizes[@]}"; do
			t0=$(now_s)
			# Eviction at the last size removed about half: put back
			# every entry of that size (the kept ones are rewritten), then
			# the new ones.
			[ "$have" -gt 0 ] && "$FILL" "$url" "$have" 0
			"$FILL" "$url" $((n - have)) "$have" || {
				skip "scale.$b.$n" "fill failed"
				break
			}
			trow "scale.$b.$n.fill" "$(secs_since "$t0")" s - "$((n - have)) entries written"
			have=$n
			# The fill's writes reach the disk before anything is timed
			# (at 1M entries ~1.3 GB is left dirty), so that the kernel's
			# writeback of them does not land in the rows below.
			sync
			scale_rows "$b" "$n" "$url" "$one"
		done
		[ "$b" = redis ] && kill "$R_PID" 2>/dev/null
	done
}
