#!/bin/sh
# A large entry file is checked whole once per boot: once a hit has checked
# it, the cache's -verified table remembers that file, and later hits
# replay it without reading it twice. Any write to the file since, even one
# that keeps its size and times, makes the next hit check it again, and a
# damaged entry is still never served.
. "$(dirname "$0")/lib.sh"

case $test_backend in
dir | mem) table=$STORE_PATH/cachedo-verified ;;
sqlite) table=$STORE_PATH-verified ;;
*) skip_all "backends whose entries are local files (sqlite, dir, mem)" ;;
esac

MiB=1048576
gen="head -c $((3 * MiB)) /dev/zero | tr '\\0' v"
sh -c "$gen" >expect

# run_big: the 3 MiB command through cachedo; its output must be exact.
run_big () {
	cachedo counted big sh -c "$gen" >out && expect_cmp expect out
}
# recorded: one more hit, then is there a record in the table?
recorded () {
	run_big && test -s "$table" && od -An -tx1 "$table" | grep -q '[1-9a-f]'
}
entry_file () {
	case $test_backend in
	sqlite) find "$STORE_PATH-blobs" -type f ;;
	*) find "$STORE_PATH/v1" -type f ! -path '*/locks/*' ! -name '.tmp-*' ;;
	esac
}

test_expect_success 'a hit records the checked entry file; more hits replay it' '
	run_big && expect_count big 1 &&
	wait_until recorded &&
	run_big && run_big &&
	expect_count big 1
'

test_expect_success 'a byte changed in place, size and mtime kept: checked, a miss' '
	f=$(entry_file) && test -f "$f" &&
	touch -r "$f" "$TMP/times" &&
	printf w | dd of="$f" bs=1 seek=$((2 * MiB)) conv=notrunc 2>/dev/null &&
	touch -r "$TMP/times" "$f" &&
	run_big && expect_count big 2 &&
	run_big && expect_count big 2
'

test_expect_success 'a damaged table is only a check done again' '
	wait_until recorded &&
	head -c "$(wc -c <"$table")" /dev/urandom >"$table" &&
	run_big && run_big && expect_count big 2
'

test_done
