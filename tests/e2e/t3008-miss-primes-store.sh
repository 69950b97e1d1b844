#!/bin/sh
# A miss does the store's reading while its command runs, not after it:
# SQLite reads the schema and prepares the put's statements then, so the
# miss adds less to the command's time. Seen from the command itself:
# cachedo (its parent) has the database's -shm open while it still runs.
# A --refresh run, which looks nothing up, opens the database only then
# (t3009 shows the order); one that SQLite would refuse (not a regular
# file it may write) is still opened, and refused, before the command
# starts.
. "$(dirname "$0")/lib.sh"

test "$test_backend" = sqlite || skip_all "the sqlite backend primes its store"
test -d /proc/self/fd || skip_all "no /proc"

# waits up to ~10 s for its parent to have a -shm file open; says which
cat >probe <<'PROBE'
i=0
while [ "$i" -lt 1000 ]; do
	if ls -l /proc/$PPID/fd 2>/dev/null | grep -q -- '-shm$'; then
		echo primed
		exit 0
	fi
	sleep 0.01
	i=$((i + 1))
done
echo "not primed"
PROBE

test_expect_success 'a --refresh miss reads the cache while the command runs' '
	cachedo -- true &&
	cachedo --refresh -- sh probe >out &&
	expect_eq primed "$(cat out)"
'

test_expect_success 'the entry a primed put stores hits' '
	cachedo -v -- sh probe >out2 2>err &&
	expect_eq primed "$(cat out2)" &&
	grep -q "^cachedo: hit" err
'

test_expect_success 'a miss that looked up first stores too' '
	cachedo -- sh probe again >out3 &&
	cachedo -v -- sh probe again >out4 2>err &&
	expect_eq primed "$(cat out4)" &&
	grep -q "^cachedo: hit" err
'

test_expect_success 'a new cache (no schema to read yet) still stores' '
	rm -f "$STORE_PATH" "$STORE_PATH"-wal "$STORE_PATH"-shm &&
	cachedo --refresh counted fresh >/dev/null &&
	cachedo counted fresh >/dev/null &&
	expect_count fresh 1
'

test_expect_success 'a --refresh of a database that cannot open warns before running' '
	mkdir -p "$TMP/adir.db" &&
	expect_fallback refresh-dir -c "sqlite:$TMP/adir.db" --refresh &&
	expect_grep "cannot open cache .*unable to open database file" err &&
	expect_count refresh-dir 1 &&
	ln -s "$STORE_PATH" "$TMP/link.db" &&
	expect_fallback refresh-link -c "sqlite:$TMP/link.db" --refresh &&
	mkfifo "$TMP/fifo.db" &&
	expect_fallback refresh-fifo -c "sqlite:$TMP/fifo.db" --refresh &&
	ls "$TMP" >files &&
	expect_no_grep -e "^adir.db-" -e "^link.db-" -e "^fifo.db-" files
'

test_expect_success 'a --refresh passes over a tier that cannot open, with one warning' '
	cachedo -c "sqlite:$TMP/adir.db sqlite:$TMP/next.db" --refresh \
		counted tiered >out 2>err &&
	expect_eq "tiered run 1" "$(cat out)" &&
	expect_lines 1 err &&
	expect_grep "adir.db.*skipped for this run" err &&
	cachedo -c "sqlite:$TMP/next.db" counted tiered >out &&
	expect_count tiered 1 &&
	ls "$TMP" >files &&
	expect_no_grep "^adir.db-" files
'

test_done
