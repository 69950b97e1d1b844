#!/bin/sh
# Freshness: TTL units, expiry, and the reader's TTL deciding.
. "$(dirname "$0")/lib.sh"

# A TTL that must not expire between two runs is 1 s, not less: a loaded CI
# machine can take a few hundred ms to start a process.
test_expect_success 'an entry is fresh within --ttl and stale after it' '
	cachedo --ttl 1s counted short &&
	cachedo --ttl 1s counted short &&
	expect_count short 1 &&
	sleep 1.2 &&
	cachedo --ttl 1s counted short >out &&
	expect_count short 2 &&
	expect_eq "short run 2" "$(cat out)"
'

for ttl in 1500ms 2s 1m 1h 1d 1w 90; do
	test_expect_success "--ttl $ttl is accepted and caches" '
		expect_status 0 cachedo --ttl $ttl counted unit$ttl &&
		expect_status 0 cachedo --ttl=$ttl counted unit$ttl &&
		expect_status 0 cachedo -t $ttl counted unit$ttl &&
		expect_count unit$ttl 1
	'
done

test_expect_success 'freshness is judged by the TTL of the reader' '
	cachedo --ttl 1h counted reader &&
	sleep 0.3 &&
	cachedo --ttl 1h counted reader &&
	expect_count reader 1 &&
	cachedo --ttl 200ms counted reader &&
	expect_count reader 2
'

test_expect_success 'the default TTL (60s) keeps an entry for a while' '
	cachedo counted default &&
	sleep 0.3 &&
	cachedo counted default &&
	expect_count default 1
'

test_expect_success '--fail-ttl sets the TTL of failures only' '
	expect_status 4 cachedo --ttl 1h --fail-ttl 1s counted failttl sh -c "exit 4" &&
	expect_status 4 cachedo --ttl 1h --fail-ttl 1s counted failttl sh -c "exit 4" &&
	expect_status 0 cachedo --ttl 1h --fail-ttl 1s counted okttl &&
	expect_count failttl 1 &&
	sleep 1.2 &&
	expect_status 4 cachedo --ttl 1h --fail-ttl 1s counted failttl sh -c "exit 4" &&
	expect_status 0 cachedo --ttl 1h --fail-ttl 1s counted okttl &&
	expect_count failttl 2 &&
	expect_count okttl 1
'

test_done
