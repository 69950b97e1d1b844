#!/bin/sh
# A lookup opens the SQLite database as a reader: its -shm mapped
# read-only, neither truncated nor grown, so that a process alone with the
# cache rebuilds no shared wal-index to read one entry. Where a reader
# cannot read (no -shm, another process at work), the lookup reopens the
# database as a writer; either way the answer is the same.
. "$(dirname "$0")/lib.sh"

test "$test_backend" = sqlite || skip_all "the sqlite backend's connections"
need_strace

test_expect_success 'a hit maps the -shm read-only and leaves it as it is' '
	cachedo counted r1 >/dev/null &&
	cachedo counted r1 >/dev/null &&
	strace -o trace -e trace=open,openat,ftruncate,pwrite64 cachedo counted r1 >out &&
	expect_count r1 1 &&
	expect_grep "shm\", O_RDONLY" trace &&
	expect_no_grep "shm\", O_RDWR" trace &&
	expect_no_grep "^ftruncate" trace &&
	expect_no_grep "^pwrite64" trace
'

test_expect_success 'a --refresh miss, which looks nothing up, opens a writer only' '
	strace -o trace-r -e trace=open,openat cachedo --refresh counted r0 >/dev/null &&
	expect_count r0 1 &&
	grep "cache.db\", O_RDWR" trace-r >opens &&
	expect_lines 1 opens &&
	expect_no_grep "shm\", O_RDONLY" trace-r
'

test_expect_success 'a --refresh miss opens the database after starting its command' '
	strace -o trace-o -e trace=open,openat,clone,clone3,vfork \
		cachedo --refresh counted opened-late >/dev/null &&
	expect_count opened-late 1 &&
	grep -n -e "clone" -e "vfork" trace-o | head -n 1 | cut -d: -f1 >spawned &&
	grep -n "cache.db\", O_RDWR" trace-o |
		head -n 1 | cut -d: -f1 >opened &&
	expect_lines 1 spawned &&
	expect_lines 1 opened &&
	test "$(cat opened)" -gt "$(cat spawned)" ||
		{ sed "s/^/| /" trace-o >&7; false; }
'

test_expect_success 'a miss after the reader looked up is stored by a writer' '
	cachedo counted r2 >/dev/null &&
	cachedo counted r2 >/dev/null &&
	expect_count r2 1
'

# quiet FILE: waits (10 s at most) until no process has FILE open: the
# detached tidy or upkeep child of an earlier miss may still have the
# database open, and a -shm removed under it would split the wal-index.
quiet () {
	i=0
	while ls -l /proc/[0-9]*/fd 2>/dev/null | grep -q -- " $1\$"; do
		test $i -lt 200 || return 1
		sleep 0.05
		i=$((i + 1))
	done
}

test_expect_success 'with no -shm file a lookup still hits, without a warning' '
	quiet "$STORE_PATH-shm" &&
	rm -f "$STORE_PATH-shm" &&
	cachedo counted r1 >out 2>err &&
	expect_count r1 1 &&
	expect_lines 0 err
'

test_expect_success 'hits while another process has the database open' '
	cachedo -- sh -c "touch started; while ! test -f stop; do sleep 0.05; done" &
	pid=$! &&
	i=0 &&
	while ! test -f started && test $i -lt 400; do sleep 0.05; i=$((i + 1)); done &&
	test -f started &&
	for i in 1 2 3 4 5 6 7 8 9 10; do
		cachedo counted r1 >/dev/null 2>>err2 || break
	done &&
	touch stop &&
	wait $pid &&
	expect_count r1 1 &&
	expect_lines 0 err2
'

test_expect_success 'a cache path with %, ? and # in it is the file opened' '
	d="$TMP/we?ird#dir%41" &&
	mkdir -p "$d" &&
	CACHEDO_CACHE="sqlite:$d/c.db" cachedo counted odd >/dev/null &&
	CACHEDO_CACHE="sqlite:$d/c.db" strace -o trace2 -e trace=open,openat cachedo counted odd >/dev/null &&
	expect_count odd 1 &&
	expect_grep "ird#dir%41/c.db-shm\", O_RDONLY" trace2 &&
	test ! -e "$TMP/we" && test ! -e "$d/c.db%41"
'

test_expect_success 'a cache path that starts with // is the file opened' '
	CACHEDO_CACHE="sqlite:/$TMP/slashes.db" cachedo counted sl >/dev/null &&
	CACHEDO_CACHE="sqlite:/$TMP/slashes.db" strace -o trace3 -e trace=open,openat cachedo counted sl >/dev/null &&
	expect_count sl 1 &&
	expect_grep "slashes.db-shm\", O_RDONLY" trace3
'

test_done
