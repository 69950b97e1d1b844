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

for ttl in 1h30m 1.5h 90min 2hours 1day 1week 2m30s 1.5 0.5d; do
	test_expect_success "compound, decimal and long --ttl $ttl caches" '
		expect_status 0 cachedo --ttl $ttl counted unit$ttl &&
		expect_status 0 cachedo --ttl=$ttl counted unit$ttl &&
		expect_count unit$ttl 1
	'
done

# (0.01h is checked on an entry of its own: a Redis server drops an entry
# at its writer's TTL, so the 0.2s entry may be gone before a later read.)
test_expect_success 'a decimal TTL counts its fraction' '
	cachedo --ttl 0.2s counted frac &&
	sleep 0.4 &&
	cachedo --ttl 0.2s counted frac &&
	expect_count frac 2 &&
	cachedo --ttl 0.01h counted frac36 &&
	cachedo --ttl 0.01h counted frac36 &&
	expect_count frac36 1
'

test_expect_success 'the compound TTL is the sum of its terms' '
	cachedo --ttl 1s counted sum &&
	sleep 1.2 &&
	cachedo --ttl 0m1s counted sum &&
	expect_count sum 2 &&
	cachedo --ttl 0m1s200ms counted sum &&
	expect_count sum 2
'

for bad in 5M 5S 30m1h 1h30 1.5.5h 5minutess 36500d1ms; do
	test_expect_success "--ttl $bad is one precise error" '
		expect_status 125 cachedo --ttl $bad counted bad 2>err &&
		expect_lines 1 err &&
		expect_grep -F "invalid --ttl '\''$bad'\'': expected a duration > 0" err &&
		expect_grep -F "m: minutes" err &&
		expect_count bad 0
	'
done

test_expect_success 'sizes take decimals: 1.5K stores 1536 bytes, not 1537' '
	cachedo --max-output 1.5K -- head -c 1536 /dev/zero >/dev/null &&
	cachedo --max-output 1.5K counted small head -c 1536 /dev/zero >/dev/null &&
	cachedo --max-output 1.5K counted small head -c 1536 /dev/zero >/dev/null &&
	expect_count small 1 &&
	cachedo --max-output 1.5K counted big head -c 1537 /dev/zero >/dev/null &&
	cachedo --max-output 1.5K counted big head -c 1537 /dev/zero >/dev/null &&
	expect_count big 2 &&
	expect_status 125 cachedo --max-output 1.5 true 2>err &&
	expect_grep -F "'\''1.5'\'': expected a size" err
'

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
