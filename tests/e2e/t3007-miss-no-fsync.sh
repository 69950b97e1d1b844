#!/bin/sh
# A miss waits for no fsync: storing its entry needs none on the user's
# run. (SQLite's checkpoints, and the WAL restarts that follow them, are
# what fsync; a miss leaves both to a detached child.) strace without -f
# follows the cachedo process alone, not the command or that child.
. "$(dirname "$0")/lib.sh"

case $test_backend in
sqlite | dir | mem) ;;
*) skip_all "local backends only (sqlite, dir, mem)" ;;
esac
need_strace

# traced_misses N ARGS...: N misses of `cachedo ARGS... counted NAME` (a new
# NAME each time), each traced; fails listing the syncs they made.
syncs=fsync,fdatasync,sync_file_range,syncfs,sync,msync
traced_misses () {
	n=$1
	shift
	i=0
	while [ "$i" -lt "$n" ]; do
		strace -o "trace.$i" -e trace=$syncs cachedo "$@" counted "m$i" >/dev/null
		i=$((i + 1))
	done
	cat trace.* >all
	grep -v '^[-+]' all >syncs || :
	expect_lines 0 syncs
}

test_expect_success 'the miss that creates the cache stores its entry' '
	cachedo counted first >out &&
	expect_eq "first run 1" "$(cat out)"
'

test_expect_success 'misses of new commands make no fsync' '
	traced_misses 12 &&
	expect_count m0 1 &&
	expect_count m11 1
'

test_expect_success 'misses with --refresh make no fsync' '
	traced_misses 12 --refresh &&
	expect_count m0 2 &&
	expect_count m11 2
'

test_expect_success 'misses of a large output make no fsync' '
	head -c 400000 /dev/zero | tr "\0" b >big &&
	for i in 1 2 3 4; do
		strace -o "trace.big$i" -e trace=$syncs cachedo --refresh counted big cat big >/dev/null
	done &&
	cat trace.big* | grep -v "^[-+]" >syncs || :
	expect_lines 0 syncs &&
	expect_count big 4 &&
	cachedo counted big cat big >out &&
	expect_count big 4 &&
	cmp big out
'

test "$test_backend" = sqlite && test_set_prereq SQLITE

# The detached child that checkpoints and restarts SQLite's WAL holds the
# write lock across an fsync: it must not be niced (a niced holder kept off
# a busy CPU keeps the next misses waiting for the lock). strace -f follows
# it (each process's calls in trace.I.PID); in every process that synced,
# no call lowered its priority before its last sync. A cache of its own,
# whose hourly upkeep is not due (its stamp is new): an upkeep at work,
# at idle priority on busy CPUs, holds the WAL back from the tidy's
# checkpoint, which then has nothing to sync.
test_expect_success SQLITE 'the WAL tidy a miss leaves runs at the priority of the run' '
	touch "$TMP/tidy.db-upkeep" &&
	i=0 &&
	while [ "$i" -lt 12 ]; do
		CACHEDO_CACHE="sqlite:$TMP/tidy.db" strace -f -ff -o "tidy.$i" \
			-e trace=fdatasync,fsync,setpriority,sched_setscheduler,ioprio_set \
			cachedo --refresh counted "t$i" >/dev/null
		i=$((i + 1))
	done &&
	grep -l -e fdatasync -e fsync tidy.* >tidied &&
	test -s tidied &&
	for f in $(cat tidied); do
		awk "/sync\\(/ { s = NR } /setpriority|sched_setscheduler|ioprio_set/ && !p { p = NR }
			END { exit !(p == 0 || p > s) }" "$f" ||
			{ echo "lowered before its sync: $f" >&7; cat "$f" >&7; exit 1; }
	done
'

test_expect_success 'the entries were stored: they hit' '
	cachedo counted m5 >out &&
	expect_count m5 2 &&
	expect_eq "m5 run 2" "$(cat out)"
'

test_done
