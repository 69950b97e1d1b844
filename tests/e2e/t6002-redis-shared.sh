#!/bin/sh
# One Redis server shared by two "machines" (each its own HOME, cache and
# runtime directories): the second replays the first's result, identical
# misses run once across both, counters are the fleet's. Also the layout of
# the keys: prefix, server-side expiry, large values in pieces, scopes.
# Runs with CACHEDO_TEST_CACHE=redis; starts its own server.
. "$(dirname "$0")/lib.sh"

test "$test_backend" = redis || skip_all "redis only (CACHEDO_TEST_CACHE=redis)"

redis_start "$TMP/shared" || { echo "Bail out! cannot start redis-server"; exit 1; }
url=$REDIS_URL
unset CACHEDO_CACHE
CACHEDO_ENV=PATH # the allowlist a fleet uses: HOME and XDG_* differ
export CACHEDO_ENV

machines m1 m2 || exit 1
# on MACHINE COMMAND...: runs COMMAND as if on that machine.
on () {
	on_machine "$@"
}

test_expect_success 'the second machine gets the first machine'"'"'s result' '
	on m1 cachedo -c "$url" counted shared sh -c "echo out \$(date +%s%N); echo err >&2; exit 4" >out1 2>err1 ||
		test $? = 4 &&
	on m2 cachedo -c "$url" -v counted shared sh -c "echo out \$(date +%s%N); echo err >&2; exit 4" >out2 2>err2 ||
		test $? = 4 &&
	expect_count shared 1 &&
	expect_cmp out1 out2 &&
	expect_grep -x err err2 &&
	expect_grep "^cachedo: hit" err2 &&
	test -z "$(ls -A "$TMP/m2/cache")"
'

test_expect_success 'the TCP URL reaches the same entries as the unix socket' '
	on m1 cachedo -c "$REDIS_TCP_URL" counted shared sh -c "echo out \$(date +%s%N); echo err >&2; exit 4" >out3 2>/dev/null ||
		test $? = 4 &&
	expect_count shared 1 &&
	expect_cmp out1 out3
'

test_expect_success 'identical misses on both machines at once run once' '
	for i in 1 2 3 4 5 6; do
		if [ $((i % 2)) = 0 ]; then m=m1; else m=m2; fi
		on $m cachedo -c "$url" counted flight sh -c "sleep 1; echo done \$(date +%s%N)" >flight.$i 2>flight-err.$i &
	done &&
	wait &&
	expect_count flight 1 &&
	for i in 2 3 4 5 6; do expect_cmp flight.1 flight.$i || exit 1; done &&
	cat flight-err.* >errs &&
	expect_lines 0 errs
'

test_expect_success '--stats shows the counters of both machines' '
	on m1 cachedo -c "$url" --zero-stats &&
	on m1 cachedo -c "$url" counted st1 >/dev/null &&
	on m2 cachedo -c "$url" counted st1 >/dev/null &&
	on m2 cachedo -c "$url" counted st1 >/dev/null &&
	on m1 cachedo -c "$url" --stats --json >stats &&
	expect_grep "\"hits\":2," stats &&
	expect_grep "\"misses\":1," stats
'

test_expect_success 'keys live under cachedo:v1:SCOPE: and expire with the TTL (PX)' '
	key=$(cachedo -c "$url" --key counted px) &&
	cachedo -c "$url" --ttl 10s counted px >/dev/null &&
	ttl=$(redis_cli pttl "cachedo:v1::$key") &&
	test "$ttl" -gt 5000 && test "$ttl" -le 10000 &&
	key=$(cachedo -c "$url" --scope team --key counted px) &&
	cachedo -c "$url" --scope team --ttl 1h counted px >/dev/null &&
	test "$(redis_cli pttl "cachedo:v1:team:$key")" -gt 3500000
'

test_expect_success 'an entry the server dropped (FLUSHALL) is a miss, not an error' '
	cachedo -c "$url" counted flushed >/dev/null &&
	redis_cli flushall >/dev/null &&
	cachedo -c "$url" counted flushed >out 2>err &&
	expect_count flushed 2 &&
	expect_lines 0 err &&
	cachedo -c "$url" counted flushed >/dev/null &&
	expect_count flushed 2
'

test_expect_success 'a 5 MiB value goes in pieces and leaves no temp key' '
	cachedo -c "$url" sh -c "head -c 5242880 /dev/urandom | od -An -tx1 | head -c 5242880" >big1 &&
	cachedo -c "$url" -v sh -c "head -c 5242880 /dev/urandom | od -An -tx1 | head -c 5242880" >big2 2>err &&
	expect_grep "^cachedo: hit" err &&
	expect_cmp big1 big2 &&
	test -z "$(redis_cli --scan --pattern "cachedo:v1:*:tmp:*")"
'

test_expect_success 'an output over --max-output is never sent to the server' '
	before=$(redis_cli dbsize) &&
	cachedo -c "$url" --max-output 1K sh -c "head -c 4096 /dev/zero" >/dev/null &&
	expect_eq "$before" "$(redis_cli dbsize)" "keys"
'

test_expect_success '--list shows the entries; --clear --scope removes only that scope' '
	cachedo -c "$url" --scope a counted sc >/dev/null &&
	cachedo -c "$url" --scope a:b counted sc >/dev/null &&
	cachedo -c "$url" counted sc >/dev/null &&
	expect_count sc 3 &&
	cachedo -c "$url" --list >list &&
	expect_grep "counted sc" list &&
	cachedo -c "$url" --scope a --clear &&
	cachedo -c "$url" --scope a counted sc >/dev/null &&
	cachedo -c "$url" --scope a:b counted sc >/dev/null &&
	cachedo -c "$url" counted sc >/dev/null &&
	expect_count sc 4
'

test_expect_success '--stats counts from the index: an entry the server expired leaves the counts' '
	redis_cli flushall >/dev/null &&
	cachedo -c "$url" --ttl 1h counted ix1 >/dev/null &&
	cachedo -c "$url" --ttl 1s counted ix2 >/dev/null &&
	cachedo -c "$url" --stats --json >stats &&
	expect_grep "\"entries\":2," stats &&
	key=$(cachedo -c "$url" --ttl 1s --key counted ix2) &&
	i=0 &&
	while test "$(redis_cli exists "cachedo:v1::$key")" = 1 && test $i -lt 100; do
		sleep 0.1 && i=$((i + 1))
	done &&
	cachedo -c "$url" --stats --json >stats &&
	expect_grep "\"entries\":1," stats &&
	expect_eq 1 "$(redis_cli zcard cachedo:v1:index:expires)" "members by expiry"
'

test_expect_success 'a cache without the index (an older cachedo) is indexed once; eviction takes the oldest' '
	redis_cli flushall >/dev/null &&
	cachedo -c "$url" counted old1 >/dev/null &&
	cachedo -c "$url" counted old2 >/dev/null &&
	cachedo -c "$url" counted old3 >/dev/null &&
	redis_cli del cachedo:v1:index:created cachedo:v1:index:expires \
		cachedo:v1:index:size cachedo:v1:index:count >/dev/null &&
	cachedo -c "$url" --stats --json >stats &&
	expect_grep "\"entries\":3," stats &&
	expect_eq 3 "$(redis_cli zcard cachedo:v1:index:created)" "members by creation" &&
	bytes=$(sed -n "s/.*\"bytes\":\([0-9]*\).*/\1/p" stats) &&
	cachedo -c "$url" --gc --max-size $((bytes * 2 / 3 + 1)) >out &&
	expect_grep "evicted 1 " out &&
	cachedo -c "$url" counted old3 >/dev/null &&
	cachedo -c "$url" counted old2 >/dev/null &&
	cachedo -c "$url" counted old1 >/dev/null &&
	expect_count old1 2 && expect_count old2 1 && expect_count old3 1
'

test_expect_success 'URL option prefix=: caches side by side on one server, cleared apart' '
	cachedo -c "$url?prefix=ci*:" counted pre >/dev/null &&
	cachedo -c "$url?prefix=ci*:" counted pre >/dev/null &&
	expect_count pre 1 &&
	cachedo -c "$url?prefix=dev:" counted pre >/dev/null &&
	cachedo -c "$url" counted pre >/dev/null &&
	expect_count pre 3 &&
	redis-cli -s "$REDIS_SOCK" --scan --pattern "ci\\*:*" >keys &&
	expect_grep -x "ci\\*:cachedo:v1:stats" keys &&
	expect_grep -x "ci\\*:cachedo:v1:index:count" keys &&
	grep -v ":cachedo:v1:index:" keys >entry_keys &&
	expect_lines 2 entry_keys &&
	cachedo -c "$url?prefix=ci*:" --stats >stats &&
	expect_grep "^entries *1$" stats &&
	expect_grep "^hits *1$" stats &&
	cachedo -c "$url?prefix=ci*:" --clear &&
	cachedo -c "$url?prefix=ci*:" counted pre >/dev/null &&
	cachedo -c "$url?prefix=dev:" counted pre >/dev/null &&
	cachedo -c "$url" counted pre >/dev/null &&
	expect_count pre 4
'

test_expect_success 'a malformed URL is refused with status 125, naming what is expected' '
	expect_status 125 cachedo -c redis://host:99999 true 2>err &&
	expect_grep "bad port" err &&
	expect_status 125 cachedo -c "unix://relative.sock" true 2>err &&
	expect_grep "absolute socket path" err &&
	expect_status 125 cachedo -c "unix:///x.sock?dbx=1" true 2>err
'

test_done
