#!/bin/sh
# Tiers: a near cache in front of a shared one (--cache repeated, or a
# blank-separated CACHEDO_CACHE), with a real redis-server as the far
# tier. A far hit is replayed and backfilled, keeping its lifetime; results
# go to every writable tier; a stopped or frozen server leaves local hits
# working; single-flight takes the server's lease, so two "machines" run a
# command once; --clear, --stats and --list see every tier.
. "$(dirname "$0")/lib.sh"

test "$test_backend" = redis || skip_all "redis only (CACHEDO_TEST_CACHE=redis)"

redis_start "$TMP/far" || { echo "Bail out! cannot start redis-server"; exit 1; }
far=$REDIS_URL
far_dir=$TMP/far
unset CACHEDO_CACHE
CACHEDO_ENV=PATH # what a fleet hashes: HOME and XDG_* differ by machine
export CACHEDO_ENV

machines m1 m2 || exit 1
# on MACHINE COMMAND...: runs COMMAND as if on that machine, whose near
# tier is its own SQLite file and whose far tier is the shared server.
on () {
	test_m=$1
	shift
	on_machine "$test_m" CACHEDO_CACHE="sqlite:$TMP/$test_m/near.db $far" "$@"
}

test_expect_success 'a miss stores in every tier' '
	on m1 cachedo counted both >out1 &&
	expect_count both 1 &&
	key=$(on m1 cachedo --key counted both) &&
	test "$(redis_cli EXISTS "cachedo:v1::$key")" = 1 &&
	test "$(sql "$TMP/m1/near.db" "SELECT count(*) FROM entry")" = 1
'

test_expect_success 'a far hit is replayed, said by -v, and backfilled into the near tier' '
	on m2 cachedo -v counted both >out2 2>err &&
	expect_count both 1 &&
	expect_cmp out1 out2 &&
	expect_grep "^cachedo: hit (age .*, from unix://" err &&
	test "$(sql "$TMP/m2/near.db" "SELECT count(*) FROM entry")" = 1 &&
	on m2 cachedo -v counted both >out3 2>err &&
	expect_grep "^cachedo: hit (age .*, from sqlite:" err
'

test_expect_success 'backfill keeps the remaining lifetime, never extends it' '
	HOME=$TMP/m1/home cachedo -c "$far" --ttl 10s counted short >/dev/null &&
	key=$(on m1 cachedo --key counted short) &&
	far_ms=$(redis_cli PTTL "cachedo:v1::$key") &&
	test "$far_ms" -gt 0 && test "$far_ms" -le 10000 &&
	on m2 cachedo --ttl 1h counted short >/dev/null &&
	expect_count short 1 &&
	exp=$(sql "$TMP/m2/near.db" "SELECT expires - created FROM entry WHERE key = X'\''$key'\''") &&
	expect_eq 10000 "$exp" "near lifetime (ms)" &&
	on m2 cachedo --list --json >list &&
	expect_grep "\"cache\":\"sqlite:" list
'

test_expect_success 'with the server stopped, near hits go on without a word' '
	on m2 cachedo counted local >/dev/null &&
	redis_stop "$far_dir" &&
	on m2 cachedo counted local >out 2>err &&
	on m2 cachedo counted both >out4 2>>err &&
	expect_cmp out1 out4 &&
	expect_count local 1 &&
	expect_count both 1 &&
	expect_lines 0 err
'

test_expect_success 'with the server stopped, a miss runs once, warns once, and is kept near' '
	on m2 cachedo counted down sh -c "echo out; exit 3" >out 2>err ||
		test $? = 3 &&
	expect_eq out "$(cat out)" &&
	expect_lines 1 err &&
	expect_grep "^cachedo: warning: .*skipped" err &&
	on m2 cachedo counted down sh -c "echo out; exit 3" >out 2>err ||
		test $? = 3 &&
	expect_count down 1 &&
	expect_lines 0 err
'

redis_start "$far_dir" || { echo "Bail out! cannot restart redis-server"; exit 1; }
far=$REDIS_URL

test_expect_success 'a frozen server costs one bounded timeout; near hits go on' '
	on m1 cachedo counted frozen >/dev/null &&
	kill -STOP "$REDIS_PID" &&
	on m1 cachedo counted frozen >/dev/null 2>err &&
	expect_lines 0 err &&
	on m1 cachedo counted frozen2 sh -c "echo x" >out 2>err &&
	expect_eq x "$(cat out)" &&
	expect_grep "^cachedo: warning: " err &&
	on m1 cachedo counted frozen2 sh -c "echo x" >out 2>err &&
	kill -CONT "$REDIS_PID" &&
	expect_count frozen 1 &&
	expect_count frozen2 1
'

redis_stop "$far_dir"
redis_start "$far_dir" || { echo "Bail out! cannot restart redis-server"; exit 1; }
far=$REDIS_URL
# each machine's breaker remembers the frozen server for 30 s: forget it
rm -f "$TMP"/m1/run/cachedo/*.down "$TMP"/m2/run/cachedo/*.down

test_expect_success 'identical misses on two machines at once run once (the far tier'"'"'s lease)' '
	pids= &&
	for i in 1 2 3 4 5 6; do
		if [ $((i % 2)) = 0 ]; then m=m1; else m=m2; fi
		on $m cachedo counted flight sh -c "sleep 1; echo done \$(date +%s%N)" >flight.$i 2>flight-err.$i &
		pids="$pids $!"
	done &&
	wait $pids &&
	expect_count flight 1 &&
	for i in 2 3 4 5 6; do expect_cmp flight.1 flight.$i || exit 1; done &&
	cat flight-err.* >errs &&
	expect_lines 0 errs
'

test_expect_success 'a far tier marked read-only in its URL is read, never written' '
	CACHEDO_CACHE="sqlite:$TMP/ro.db $far?read-only=1" cachedo counted ro >/dev/null &&
	test "$(redis_cli DBSIZE)" = "$(redis_cli DBSIZE)" &&
	key=$(CACHEDO_CACHE="sqlite:$TMP/ro.db" cachedo --key counted ro) &&
	test "$(redis_cli EXISTS "cachedo:v1::$key")" = 0 &&
	test "$(sql "$TMP/ro.db" "SELECT count(*) FROM entry")" = 1 &&
	cachedo -c "$far" counted farro >/dev/null &&
	rm -f "$TMP/ro.db"* &&
	CACHEDO_CACHE="sqlite:$TMP/ro.db $far?read-only=1" cachedo counted farro >/dev/null &&
	expect_count farro 1 &&
	expect_status 0 env CACHEDO_CACHE="sqlite:$TMP/ro.db $far?read-only=1" cachedo --clear &&
	key=$(CACHEDO_CACHE="sqlite:$TMP/ro.db" cachedo --key counted farro) &&
	test "$(redis_cli EXISTS "cachedo:v1::$key")" = 1
'

test_expect_success '--stats and --list show each tier; --clear empties every tier' '
	on m1 cachedo counted stat >/dev/null &&
	on m1 cachedo --stats >stats &&
	expect_grep "^# tier 1: sqlite:" stats &&
	expect_grep "^# tier 2: unix://" stats &&
	on m1 cachedo --stats --json >stats.json &&
	test "$(grep -o "\"cache\":" stats.json | wc -l)" = 2 &&
	on m1 cachedo --list >list &&
	expect_grep "^# tier 2: " list &&
	on m1 cachedo --clear &&
	test "$(redis_cli DBSIZE)" -le 1 &&
	test "$(redis_cli --scan --pattern "cachedo:v1::*" | wc -l)" = 0 &&
	test "$(sql "$TMP/m1/near.db" "SELECT count(*) FROM entry")" = 0
'

test_expect_success '--cache given twice is the same as a blank-separated list' '
	HOME=$TMP/m1/home cachedo -c "sqlite:$TMP/twice.db" -c "$far" counted twice >/dev/null &&
	key=$(cachedo -c "$far" --key counted twice) &&
	test "$(redis_cli EXISTS "cachedo:v1::$key")" = 1 &&
	test "$(sql "$TMP/twice.db" "SELECT count(*) FROM entry")" = 1 &&
	expect_status 125 cachedo -c "sqlite:$TMP/x.db nope:" counted bad 2>err &&
	expect_grep "nope:" err
'

test_done
