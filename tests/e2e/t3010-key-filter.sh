#!/bin/sh
# The SQLite backend's key filter (PATH-keys): a first run of a command,
# whose key the filter says is not stored, does not open the database
# before it starts the command; it opens it as a writer while the command
# runs. A stored entry is a hit whether the filter is there or not; a
# missing filter is made again by --gc (and by the detached tidy).
. "$(dirname "$0")/lib.sh"

test "$test_backend" = sqlite || skip_all "the sqlite backend's key filter"
need_strace

# first_run NAME TRACE: a first run of `counted NAME`, traced into TRACE,
# which must run the command once; the line numbers of its first spawn and
# of its first open of the database itself (not its -keys, -wal or -shm)
# go into spawned and opened.
first_run () {
	strace -o "$2" -e trace=open,openat,clone,clone3,vfork \
		cachedo counted "$1" >/dev/null &&
	expect_count "$1" 1 &&
	grep -n -e "clone" -e "vfork" "$2" | head -n 1 | cut -d: -f1 >spawned &&
	{ grep -n "cache.db\", O_R" "$2" | head -n 1 | cut -d: -f1 >opened; } &&
	expect_lines 1 spawned &&
	expect_lines 1 opened
}

# opened_when after|before TRACE: did that first run open the database
# after (before) it spawned the command? Shows TRACE when not.
opened_when () {
	case $1 in
	after) test "$(cat opened)" -gt "$(cat spawned)" ;;
	*) test "$(cat opened)" -lt "$(cat spawned)" ;;
	esac || { sed "s/^/| /" "$2" >&7; false; }
}

test_expect_success 'a first run opens the database only after starting its command' '
	cachedo counted f0 >/dev/null &&
	test -f "$STORE_PATH-keys" &&
	first_run f1 trace &&
	opened_when after trace
'

test_expect_success 'and it looked in the key filter first' '
	grep -n "cache.db-keys\", O_RDONLY" trace | head -n 1 | cut -d: -f1 >looked &&
	expect_lines 1 looked &&
	test "$(cat looked)" -lt "$(cat spawned)"
'

test_expect_success 'what it stored is a hit' '
	cachedo counted f1 >out &&
	expect_count f1 1 &&
	expect_grep "^f1 run 1" out
'

test_expect_success 'without the filter, stored entries are still hits' '
	rm -f "$STORE_PATH-keys" &&
	cachedo counted f1 >out 2>err &&
	expect_count f1 1 &&
	expect_lines 0 err
'

test_expect_success 'without the filter, a first run looks in the database' '
	first_run f2 trace2 &&
	opened_when before trace2
'

test_expect_success '--gc makes the filter again, with every stored key' '
	cachedo --gc >/dev/null &&
	test -f "$STORE_PATH-keys" &&
	for k in f0 f1 f2; do cachedo counted $k >/dev/null || return 1; done &&
	expect_count f0 1 && expect_count f1 1 && expect_count f2 1 &&
	first_run f3 trace3 &&
	opened_when after trace3
'

# Zeros over the header and every bit: f3's bit is clear now, and only the
# header's check keeps the filter from hiding the entry.
test_expect_success 'a damaged filter is not trusted' '
	size=$(wc -c <"$STORE_PATH-keys") &&
	dd if=/dev/zero of="$STORE_PATH-keys" bs="$size" count=1 conv=notrunc 2>/dev/null &&
	cachedo counted f3 >out 2>err &&
	expect_count f3 1 &&
	expect_lines 0 err
'

test_done
