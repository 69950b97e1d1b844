#!/bin/sh
# A reader that goes away early (| head -1) does not cost the cache entry,
# and an endless command still ends once its output cannot be stored.
. "$(dirname "$0")/lib.sh"

test_expect_success 'after | head -1 closes, the full output is still stored' '
	seq 1 1000000 | cksum >expect &&
	timeout 20 cachedo counted seq seq 1 1000000 | head -n 1 >out &&
	expect_eq 1 "$(cat out)" &&
	timeout 20 cachedo counted seq seq 1 1000000 >all &&
	expect_count seq 1 &&
	expect_eq 1000000 $(wc -l <all) "line count" &&
	cksum <all >sum &&
	expect_cmp expect sum &&
	timeout 20 cachedo counted seq seq 1 1000000 | head -n 1 >out &&
	expect_eq 1 "$(cat out)" &&
	expect_count seq 1
'

test_expect_success 'endless output behind | head -1 ends under --max-output 1M' '
	{
		st=0 &&
		timeout 20 cachedo --max-output 1M counted yes yes 2>err || st=$?
		echo $st >status
	} | head -n 1 >out &&
	expect_eq y "$(cat out)" &&
	expect_eq 141 "$(cat status)" "status (124: timed out)" &&
	expect_lines 0 err
'

test_done
