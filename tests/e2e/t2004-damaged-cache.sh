#!/bin/sh
# A damaged cache heals itself: a SQLite file that SQLite calls corrupt or
# not a database is moved aside (PATH) or removed (PATH-big) once, with one
# warning; a damaged or missing file of a big SQLite entry is a miss; a
# dir:/mem: root with something foreign in its folders' or
# entries' places is repaired; --clear leaves a working empty cache
# whatever the files hold. Every run gives the command's own output.
. "$(dirname "$0")/lib.sh"

case $test_backend in
sqlite | dir | mem) ;;
*) skip_all "local backends only (sqlite, dir, mem)" ;;
esac

# The hourly upkeep runs in a detached child after a miss, and would
# repair a damage of ours silently now and then (its warnings go nowhere):
# it has just run, as far as the cache knows.
case $test_backend in
sqlite) touch "$STORE_PATH-upkeep" ;;
*) mkdir -p -m 700 "$STORE_PATH" && touch "$STORE_PATH/cachedo-upkeep" ;;
esac

# run_ok NAME: `counted NAME` through cachedo prints "out" and exits 3;
# stderr goes to ./err.
run_ok () {
	expect_status 3 cachedo counted "$1" sh -c 'echo out; exit 3' >out 2>err &&
	expect_eq out "$(cat out)"
}

# heals NAME: after the damage, one run that stores, with at most one
# warning, then two hits without any.
heals () {
	runs=$(count "$1") &&
	run_ok "$1" &&
	expect_no_grep -v "^cachedo: warning: " err &&
	test "$(wc -l <err)" -le 1 &&
	cp err first-err &&
	run_ok "$1" && run_ok "$1" &&
	expect_count "$1" $((runs + 1)) &&
	expect_lines 0 err
}

# clears: --clear succeeds, then a store and a hit.
clears () {
	expect_status 0 cachedo --clear 2>clear-err &&
	runs=$(count "$1") &&
	run_ok "$1" && run_ok "$1" &&
	expect_count "$1" $((runs + 1))
}

if [ "$test_backend" = sqlite ]; then
	db=$STORE_PATH
	big_gen="head -c 400000 /dev/zero | tr '\\0' b"
	sh -c "$big_gen" >"$TMP/big.expect"

	# checkpoint: every page of PATH in PATH itself, none in its WAL (once
	# the detached child that a miss may leave to checkpoint is done: its
	# last write puts page 1 in the WAL, where it hides the file's own).
	checkpoint () {
		{ test ! -e "$db-tidy" || flock "$db-tidy" true; } &&
		python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()' "$db"
	}
	# old_layout: the big entries' files become rows of PATH-big, where
	# caches written before PATH-blobs kept them.
	old_layout () {
		python3 -c 'import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
big = sqlite3.connect(sys.argv[1] + "-big")
big.execute("PRAGMA page_size = 65536")
big.execute("PRAGMA journal_mode = WAL")
big.execute("CREATE TABLE IF NOT EXISTS chunk(id INTEGER PRIMARY KEY, bytes BLOB)")
for (b,) in db.execute("SELECT blob FROM entry WHERE bytes IS NULL"):
    f = "%s-blobs/%016x" % (sys.argv[1], b)
    data = open(f, "rb").read()
    for i in range(0, len(data), 1 << 20):
        big.execute("INSERT INTO chunk VALUES(?, ?)", ((b << 16) + (i >> 20), data[i:i + (1 << 20)]))
    os.unlink(f)
big.commit()
big.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()' "$db"
	}
	# fill N: N small entries, so PATH has pages past its first.
	fill () {
		i=0
		while [ $i -lt "$1" ]; do
			cachedo echo "entry $i $(head -c 300 /dev/zero | tr '\0' x)" >/dev/null || return 1
			i=$((i + 1))
		done
	}

	test_expect_success 'a junk header of PATH: moved aside, one warning, then store and hit' '
		run_ok hdr && run_ok hdr && expect_count hdr 1 && checkpoint &&
		printf "JUNKJUNKJUNKJUNK" | dd of="$db" conv=notrunc 2>/dev/null &&
		heals hdr &&
		expect_lines 1 first-err &&
		expect_grep "cache database .* was damaged (.*not a database.*): moved it to .*\.corrupt" first-err &&
		test -f "$db.corrupt"
	'

	test_expect_success 'junk in a page of PATH: moved aside, then store and hit' '
		cachedo --clear && fill 40 && run_ok page && checkpoint &&
		size=$(wc -c <"$db") && test "$size" -ge 16384 &&
		head -c 4096 /dev/urandom | dd of="$db" bs=4096 seek=1 conv=notrunc 2>/dev/null &&
		heals page &&
		expect_grep "damaged (.*malformed.*): moved it" first-err
	'

	test_expect_success 'a big entry of an older cache is served from PATH-big' '
		cachedo --clear &&
		cachedo counted bigo sh -c "$big_gen" >/dev/null && old_layout &&
		test "$(find "$db-blobs" -type f | wc -l)" = 0 &&
		cachedo counted bigo sh -c "$big_gen" >got 2>err &&
		expect_cmp "$TMP/big.expect" got && expect_lines 0 err &&
		expect_count bigo 1
	'

	test_expect_success 'a big entry'"'"'s file truncated or junk: a miss, byte-exact again' '
		cachedo --clear &&
		cachedo counted bigf sh -c "$big_gen" >/dev/null &&
		f=$(find "$db-blobs" -type f) && test -f "$f" &&
		truncate -s 70000 "$f" &&
		cachedo counted bigf sh -c "$big_gen" >got 2>err &&
		expect_cmp "$TMP/big.expect" got && expect_lines 0 err &&
		expect_count bigf 2 &&
		f=$(find "$db-blobs" -type f) && test -f "$f" &&
		head -c 1000 /dev/urandom | dd of="$f" bs=1 seek=50000 conv=notrunc 2>/dev/null &&
		cachedo counted bigf sh -c "$big_gen" >got 2>err &&
		expect_cmp "$TMP/big.expect" got && expect_lines 0 err &&
		expect_count bigf 3 &&
		cachedo counted bigf sh -c "$big_gen" >got 2>err &&
		expect_cmp "$TMP/big.expect" got && expect_count bigf 3 &&
		test "$(find "$db-blobs" -type f | wc -l)" = 1
	'

	test_expect_success 'PATH-blobs replaced by a file: a miss, then store and hit' '
		cachedo --clear &&
		cachedo counted bigd sh -c "$big_gen" >/dev/null &&
		rm -rf "$db-blobs" && echo junk >"$db-blobs" &&
		cachedo counted bigd sh -c "$big_gen" >got 2>err &&
		expect_cmp "$TMP/big.expect" got && expect_lines 0 err &&
		cachedo counted bigd sh -c "$big_gen" >got 2>err &&
		expect_cmp "$TMP/big.expect" got && expect_lines 0 err &&
		expect_count bigd 2 && test -d "$db-blobs"
	'

	test_expect_success 'PATH-big of an older cache truncated: removed, one warning, byte-exact again' '
		cachedo --clear &&
		cachedo counted bigt sh -c "$big_gen" >/dev/null && old_layout &&
		truncate -s 70000 "$db-big" &&
		cachedo counted bigt sh -c "$big_gen" >got 2>err &&
		expect_cmp "$TMP/big.expect" got &&
		expect_lines 1 err &&
		expect_grep "cache file .*-big. was damaged .*: removed it" err &&
		expect_count bigt 2 &&
		cachedo counted bigt sh -c "$big_gen" >got 2>err &&
		expect_cmp "$TMP/big.expect" got && expect_lines 0 err &&
		expect_count bigt 2
	'

	test_expect_success 'PATH-big of an older cache full of junk: removed, then store and hit' '
		cachedo --clear &&
		cachedo counted bigj sh -c "$big_gen" >/dev/null && old_layout &&
		head -c 200000 /dev/urandom | dd of="$db-big" conv=notrunc 2>/dev/null &&
		cachedo counted bigj sh -c "$big_gen" >got 2>err &&
		expect_cmp "$TMP/big.expect" got &&
		expect_lines 1 err &&
		cachedo counted bigj sh -c "$big_gen" >got 2>err &&
		expect_cmp "$TMP/big.expect" got && expect_lines 0 err &&
		expect_count bigj 2
	'

	test_expect_success 'PATH and PATH-big swapped: replaced, then store and hit' '
		cachedo --clear &&
		cachedo counted swap sh -c "$big_gen" >/dev/null && checkpoint &&
		python3 -c "import sqlite3, sys
sqlite3.connect(sys.argv[1]).execute(\"PRAGMA wal_checkpoint(TRUNCATE)\").fetchall()" "$db-big" &&
		mv "$db" "$TMP/swap" && mv "$db-big" "$db" && mv "$TMP/swap" "$db-big" &&
		rm -f "$db-wal" "$db-shm" "$db-big-wal" "$db-big-shm" &&
		heals swap2 &&
		cachedo counted swap sh -c "$big_gen" >got &&
		expect_cmp "$TMP/big.expect" got
	'

	test_expect_success '--clear of a junk PATH and PATH-big leaves a working cache' '
		cachedo counted clr1 sh -c "$big_gen" >/dev/null &&
		head -c 20000 /dev/urandom >"$db" &&
		head -c 20000 /dev/urandom >"$db-big" &&
		clears clr1 &&
		expect_no_grep -v "^cachedo: warning: .*damaged" clear-err
	'

	test_expect_success '--clear of a header damaged to read-only leaves a working cache' '
		cachedo --clear && run_ok ro && checkpoint &&
		printf "\003" | dd of="$db" bs=1 seek=18 conv=notrunc 2>/dev/null &&
		clears ro
	'

	test_expect_success '--clear of a database with an implausible schema version' '
		run_ok ver && checkpoint &&
		printf "\177\177\177\177" | dd of="$db" bs=1 seek=60 conv=notrunc 2>/dev/null &&
		clears ver
	'

	test_expect_success 'junk side files (usage, stats) block neither --clear nor stores' '
		head -c 3000 /dev/urandom >"$db-usage" &&
		head -c 3000 /dev/urandom >"$db-stats" &&
		clears side && cachedo --stats >/dev/null
	'
else
	root=$STORE_PATH
	run_ok warm
	key () { cachedo --key counted "$1" sh -c 'echo out; exit 3'; }

	test_expect_success 'a folder in an entry'"'"'s place: removed, then store and hit' '
		k=$(key ent) && run_ok ent &&
		rm -f "$root/v1/$(echo $k | cut -c1-2)/$k" &&
		mkdir -p "$root/v1/$(echo $k | cut -c1-2)/$k/sub" &&
		heals ent
	'

	test_expect_success 'a file in a fan-out folder'"'"'s place: replaced, one warning' '
		k=$(key fan) && run_ok fan &&
		d=$root/v1/$(echo $k | cut -c1-2) && rm -rf "$d" && echo junk >"$d" &&
		heals fan &&
		expect_lines 1 first-err &&
		expect_grep "removed .*/v1/$(echo $k | cut -c1-2).*not a folder" first-err
	'

	test_expect_success 'a file in v1'"'"'s place: replaced, then store and hit' '
		run_ok v1 && rm -rf "$root/v1" && echo junk >"$root/v1" &&
		heals v1 &&
		expect_lines 1 first-err
	'

	test_expect_success '--clear removes what is not ours from v1, and the cache works' '
		k=$(key clr) && run_ok clr &&
		rm "$root/v1/$(echo $k | cut -c1-2)/$k" &&
		mkdir -p "$root/v1/$(echo $k | cut -c1-2)/$k/sub" &&
		for j in 0f 1e 2d 3c; do test -e "$root/v1/$j" || break; done &&
		echo junk >"$root/v1/zz" && echo junk >"$root/v1/$j" &&
		clears clr &&
		test ! -e "$root/v1/$j"
	'

	test_expect_success '--clear of a v1 that is a file leaves a working cache' '
		rm -rf "$root/v1" && echo junk >"$root/v1" &&
		clears clr2
	'

	test_expect_success 'junk side files (usage, stats) block neither --clear nor stores' '
		head -c 3000 /dev/urandom >"$root/cachedo-usage" &&
		head -c 3000 /dev/urandom >"$root/cachedo-stats" &&
		clears side && cachedo --stats >/dev/null
	'
fi

test_done
