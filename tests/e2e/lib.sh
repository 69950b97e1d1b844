# lib.sh: the shared harness of the end-to-end tests, sourced by tNNNN-*.sh.
# Run all: make test-e2e   (another backend: CACHEDO_TEST_CACHE=dir make test-e2e)
# Run one: sh tests/e2e/t1001-hit-miss.sh   (KEEP_TMP=1 keeps its temp dir)

TEST_NAME=$(basename "$0" .sh)
TEST_DIR=$(cd "$(dirname "$0")" && pwd) || exit 1
ROOT=$(cd "$TEST_DIR/../.." && pwd) || exit 1
test_bin=${CACHEDO:-$ROOT/build/cachedo}
case $test_bin in /*) ;; *) test_bin=$PWD/$test_bin ;; esac
unset CACHEDO
CACHEDO=$test_bin # absolute, not exported; tests may also just say `cachedo`
if ! [ -x "$CACHEDO" ]; then
	echo "Bail out! no cachedo binary at $CACHEDO (run make, or set CACHEDO)"
	exit 1
fi

# The test's own settings survive; every other CACHEDO_* variable goes.
test_backend=${CACHEDO_TEST_CACHE:-sqlite}
test_redis_url=${CACHEDO_TEST_REDIS_URL-}
test_exec_url=${CACHEDO_TEST_EXEC_URL-}
test_sanitize=${CACHEDO_TEST_SANITIZE-}
test_fill=${CACHEDO_TEST_FILL-} # bench/fill, when make built it
for test_v in $(env | sed -n 's/^\(CACHEDO_[A-Za-z0-9_]*\)=.*/\1/p'); do
	unset "$test_v"
done

LC_ALL=C
export LC_ALL

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cachedo-$TEST_NAME.XXXXXX") || exit 1
. "$TEST_DIR/redis.sh"
test_cleanup () {
	redis_stop_all
	if [ "${KEEP_TMP-}" = 1 ]; then
		echo "# kept $TMP"
	else
		# a detached refresh or upkeep may still be finishing its files
		test_i=0
		until rm -rf "$TMP" 2>/dev/null || [ $test_i -ge 50 ]; do
			test_i=$((test_i + 1))
			sleep 0.1
		done
		rm -rf "$TMP"
	fi
}
trap test_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

HOME=$TMP/home
XDG_CACHE_HOME=$TMP/xdg-cache
XDG_CONFIG_HOME=$TMP/xdg-config
XDG_RUNTIME_DIR=$TMP/xdg-run
export HOME XDG_CACHE_HOME XDG_CONFIG_HOME XDG_RUNTIME_DIR
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$TMP/bin" "$TMP/work" || exit 1
chmod 700 "$XDG_RUNTIME_DIR"
ln -s "$CACHEDO" "$TMP/bin/cachedo"
PATH=$TMP/bin:$PATH
export PATH
cd "$TMP/work" || exit 1

# counted NAME [COMMAND [ARG]...]: appends a line to $TMP/count.NAME, then
# runs COMMAND, or by default prints "NAME run N" (N = this run's number).
cat >"$TMP/bin/counted" <<EOF
#!/bin/sh
echo run >>"$TMP/count.\$1"
test \$# -gt 1 || { echo "\$1 run \$((\$(wc -l <"$TMP/count.\$1")))"; exit 0; }
shift
exec "\$@"
EOF
chmod 755 "$TMP/bin/counted"

# sql DB STATEMENT...: the sqlite3 shell, waiting up to 30 s for a lock (a
# detached tidy or upkeep child of an earlier run may hold the write lock).
sql () {
	sqlite3 -cmd ".timeout 30000" "$@"
}

# count NAME: how many times `counted NAME` really ran.
count () {
	if [ -f "$TMP/count.$1" ]; then echo $(($(wc -l <"$TMP/count.$1"))); else echo 0; fi
}

# setup_backend NAME: the hook that maps $CACHEDO_TEST_CACHE to a cache URL.
# Add new backends here. STORE_PATH is where a local backend keeps its data
# (tests that inspect the stored bytes need prerequisite LOCAL_STORE).
setup_backend () {
	STORE_PATH=
	case $1 in
	sqlite) CACHEDO_CACHE=sqlite:$TMP/cache.db STORE_PATH=$TMP/cache.db ;;
	dir) CACHEDO_CACHE=dir:$TMP/cachedir STORE_PATH=$TMP/cachedir ;;
	mem) CACHEDO_CACHE=mem: STORE_PATH=$XDG_RUNTIME_DIR/cachedo ;;
	redis)
		# CACHEDO_TEST_REDIS_URL names a server; else the test starts its
		# own (under CI a missing redis-server fails instead of skipping).
		if [ -z "$test_redis_url" ]; then
			if ! command -v redis-server >/dev/null 2>&1; then
				test "${CI-}" != true || { echo "Bail out! backend redis: no redis-server (CI=true)"; exit 1; }
				skip_all "backend redis: no redis-server"
			fi
			redis_start "$TMP/redis" || { echo "Bail out! cannot start redis-server"; exit 1; }
			test_redis_url=$REDIS_URL
		fi
		CACHEDO_CACHE=$test_redis_url ;;
	exec)
		# The shipped plain-files helper, unless CACHEDO_TEST_EXEC_URL names another.
		if [ -n "$test_exec_url" ]; then
			CACHEDO_CACHE=$test_exec_url
		else
			# One word (tests pass it through `env -i $vars`): the helper
			# keeps its files in $XDG_CACHE_HOME/cachedo-files.
			CACHEDO_CACHE=exec:$ROOT/examples/cachedo-files
			STORE_PATH=$XDG_CACHE_HOME/cachedo-files
		fi ;;
	*) echo "Bail out! unknown CACHEDO_TEST_CACHE '$1'"; exit 1 ;;
	esac
	export CACHEDO_CACHE
	test -z "$STORE_PATH" || test_set_prereq LOCAL_STORE
}

# store_files: every file that holds the backend's data, one per line.
store_files () {
	test -z "$STORE_PATH" || find "$STORE_PATH"* -type f 2>/dev/null || :
}

# Prerequisites, as in git: test_expect_success PREREQ 'desc' 'code'.
test_prereqs=" "
test_set_prereq () { test_prereqs="$test_prereqs$1 "; }
test_have_prereq () { case $test_prereqs in *" $1 "*) return 0 ;; esac; return 1; }
# Memory and speed bounds hold for the plain build, not under the sanitizers.
if [ -z "$test_sanitize" ]; then
	test_set_prereq PLAIN_BUILD
	if /usr/bin/time -q -f %M -o /dev/null true 2>/dev/null; then test_set_prereq RSS; fi
fi

skip_all () {
	echo "1..0 # SKIP $TEST_NAME: $*"
	exit 0
}

# need_strace: skips the whole script where strace is missing (CI=true:
# fails it, make deps installs strace) or cannot trace here. LeakSanitizer
# cannot run under ptrace: the sanitized build, traced, goes without it.
need_strace () {
	if ! command -v strace >/dev/null 2>&1; then
		test "${CI-}" != true || { echo "Bail out! no strace (CI=true; make deps installs it)"; exit 1; }
		skip_all "no strace"
	fi
	strace -o /dev/null true 2>/dev/null || skip_all "strace cannot trace here"
	if [ -n "$test_sanitize" ]; then
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
		export ASAN_OPTIONS
	fi
}

test_count=0 test_failed=0 test_skipped=0

# test_expect_success [PREREQ] 'description' 'code': runs code (an && chain)
# in a subshell with set -e, in $TMP/work, stdin from /dev/null.
test_expect_success () {
	test_prereq=
	if [ $# = 3 ]; then test_prereq=$1; shift; fi
	test_count=$((test_count + 1))
	if [ -n "$test_prereq" ] && ! test_have_prereq "$test_prereq"; then
		test_skipped=$((test_skipped + 1))
		echo "ok $test_count # skip $1 (missing $test_prereq)"
		return 0
	fi
	(set -e; eval "$2") >"$TMP/test-output" 2>&1 7>&1 </dev/null
	if [ $? = 0 ]; then
		echo "ok $test_count - $1"
	else
		test_failed=$((test_failed + 1))
		echo "not ok $test_count - $1"
		printf '%s\n' "$2" | sed -e '/^[[:space:]]*$/d' -e 's/^/#	/'
		echo "# output:"
		sed 's/^/#   /' "$TMP/test-output"
	fi
}

test_done () {
	echo "1..$test_count"
	echo "# $TEST_NAME: $((test_count - test_failed - test_skipped)) passed, $test_failed failed, $test_skipped skipped"
	test "$test_failed" = 0
	exit
}

# Assertions: each returns non-zero and says why on fd 7, the test's output
# (so that `expect_status 0 cachedo ... 2>err` still reports).

# expect_status N COMMAND [ARG]...
expect_status () {
	test_want=$1
	shift
	if "$@"; then test_got=0; else test_got=$?; fi
	test "$test_got" = "$test_want" && return 0
	echo "expected status $test_want, got $test_got from: $*" >&7
	return 1
}

# expect_count NAME N: `counted NAME` ran exactly N times.
expect_count () {
	test_got=$(count "$1")
	test "$test_got" = "$2" && return 0
	echo "expected $2 run(s) of '$1', got $test_got" >&7
	return 1
}

# expect_eq EXPECTED ACTUAL [WHAT]
expect_eq () {
	test "$1" = "$2" && return 0
	echo "expected ${3:-value} '$1', got '$2'" >&7
	return 1
}

# expect_lines N FILE: FILE has exactly N lines.
expect_lines () {
	test_got=$(($(wc -l <"$2")))
	test "$test_got" = "$1" && return 0
	echo "expected $1 line(s) in $2, got $test_got:" >&7
	sed 's/^/| /' "$2" >&7
	return 1
}

# expect_grep [GREP-OPTION]... PATTERN FILE (and expect_no_grep: no match).
expect_grep () {
	eval "test_file=\${$#}"
	grep "$@" >/dev/null && return 0
	echo "no match for grep $* in:" >&7
	sed 's/^/| /' "$test_file" >&7
	return 1
}
expect_no_grep () {
	eval "test_file=\${$#}"
	grep "$@" >/dev/null || return 0
	echo "unexpected match for grep $* in:" >&7
	sed 's/^/| /' "$test_file" >&7
	return 1
}

# expect_cmp EXPECTED ACTUAL: byte-identical files.
expect_cmp () {
	cmp "$1" "$2" >&7 2>&7 && return 0
	echo "expected ($1):" >&7
	od -c "$1" | head -n 8 >&7
	echo "actual ($2):" >&7
	od -c "$2" | head -n 8 >&7
	return 1
}

# peak_rss_kb COMMAND [ARG]...: runs COMMAND with GNU time (prerequisite RSS)
# and leaves its peak resident set in KiB in $TMP/rss; returns its status.
peak_rss_kb () {
	/usr/bin/time -q -f %M -o "$TMP/rss" "$@"
}
# expect_rss_below KIB: the last peak_rss_kb run stayed below KIB.
expect_rss_below () {
	test_got=$(tail -n 1 "$TMP/rss")
	test "$test_got" -lt "$1" && return 0
	echo "peak RSS ${test_got} KiB, expected below $1 KiB" >&7
	return 1
}

# spawn COMMAND [ARG]...: start COMMAND in the background as $! itself, with
# SIGINT and SIGQUIT at their defaults (sh ignores them in background jobs).
spawn () {
	(exec env --default-signal=INT,QUIT "$@") &
}

# wait_until COMMAND [ARG]...: polls (up to 10 s) until COMMAND succeeds.
wait_until () {
	test_i=0
	while ! "$@"; do
		test_i=$((test_i + 1))
		test "$test_i" -le 200 || { echo "timed out waiting for: $*" >&7; return 1; }
		sleep 0.05
	done
}

# lock_waiter: waits (up to 10 s) until some run waits for a single-flight
# lock that another run holds: a blocked request on a cachedo.lock file
# below $TMP in /proc/locks, or, on Redis, a subscriber to a lock channel of
# the test's own server (a server named by CACHEDO_TEST_REDIS_URL cannot be
# asked: the run gets 3 s).
lock_waiter () {
	if test "$test_backend" != redis; then
		wait_until file_lock_waited
	elif test -n "${REDIS_SOCK-}"; then
		wait_until redis_lock_waited
	else
		sleep 3
	fi
}
file_lock_waited () {
	for test_f in $(find "$TMP" -name cachedo.lock 2>/dev/null); do
		test_ino=$(stat -c %i "$test_f") &&
			grep -q -e "-> .*:$test_ino " /proc/locks && return 0
	done
	return 1
}
redis_lock_waited () {
	test -n "$(redis_cli PUBSUB CHANNELS '*lock*' 2>/dev/null)"
}

# wait_for FILE: wait up to 10 s for FILE to exist.
wait_for () {
	wait_until test -e "$1"
}

# upkeep_settled PREFIX: waits for the upkeep that a stored miss started in
# the background on the cache whose own files are PREFIX-usage, -stats ...
# (it writes PREFIX-stats under the lock on PREFIX-usage, then works on,
# and releases that lock last: after it, the upkeep holds no file there).
upkeep_settled () {
	wait_for "$1-stats" && flock "$1-usage" true
}

# machines NAME...: a home, cache and runtime folder for each NAME, as on
# the machines of a fleet that share one server (see on_machine).
machines () {
	for test_m in "$@"; do
		mkdir -p "$TMP/$test_m/home" "$TMP/$test_m/cache" "$TMP/$test_m/run" &&
			chmod 700 "$TMP/$test_m/run" || return 1
	done
}
# on_machine NAME [VAR=VALUE]... PROGRAM [ARG]...: runs PROGRAM as if on
# machine NAME, with its own HOME, XDG_CACHE_HOME and XDG_RUNTIME_DIR.
on_machine () {
	test_m=$1
	shift
	env HOME="$TMP/$test_m/home" XDG_CACHE_HOME="$TMP/$test_m/cache" \
		XDG_RUNTIME_DIR="$TMP/$test_m/run" "$@"
}

# write_config: stdin becomes $XDG_CONFIG_HOME/cachedo/config.
write_config () {
	mkdir -p "$XDG_CONFIG_HOME/cachedo" && cat >"$XDG_CONFIG_HOME/cachedo/config"
}

setup_backend "$test_backend"

# expect_fail_open NAME CACHEDO-OPTION...: with these options the command
# runs (twice), exits 3 with its own output, and one warning line appears.
expect_fail_open () {
	test_name=$1
	shift
	for test_q in "" -q; do
		expect_status 3 cachedo $test_q "$@" counted "$test_name" \
			sh -c "echo out; echo err >&2; exit 3" >out 2>err &&
		expect_eq out "$(cat out)" &&
		expect_grep -x err err || return 1
		if [ -z "$test_q" ]; then
			expect_lines 2 err &&
			expect_grep "^cachedo: warning: " err || return 1
		else
			expect_lines 1 err || return 1
		fi
	done
	expect_count "$test_name" 2
}

# expect_fallback NAME CACHEDO-OPTION...: `counted NAME` runs through cachedo
# with the options and gives back its output and status 3; stderr holds
# "err" and exactly one warning that it ran uncached (left in ./err).
expect_fallback () {
	test_name=$1
	shift
	expect_status 3 cachedo "$@" counted "$test_name" \
		sh -c "echo out; echo err >&2; exit 3" >out 2>err &&
	expect_eq out "$(cat out)" &&
	expect_grep -x err err &&
	expect_lines 2 err &&
	expect_grep "^cachedo: warning: .*running uncached" err
}
