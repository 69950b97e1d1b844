#!/bin/sh
# Large outputs: stored and replayed exactly in bounded memory; over
# --max-output they pass through in full but are not stored.
. "$(dirname "$0")/lib.sh"

MiB=1048576
limit_kb=65536
gen200="head -c $((200 * MiB)) /dev/zero | tr '\\0' x"
gen300="head -c $((300 * MiB)) /dev/zero | tr '\\0' y"

test_expect_success RSS '200 MiB is stored and replayed exactly, in < 64 MiB RSS' '
	sh -c "$gen200" | cksum >expect &&
	peak_rss_kb cachedo counted big200 sh -c "$gen200" | cksum >sum1 &&
	expect_rss_below $limit_kb &&
	expect_cmp expect sum1 &&
	peak_rss_kb cachedo counted big200 sh -c "$gen200" | cksum >sum2 &&
	expect_rss_below $limit_kb &&
	expect_cmp expect sum2 &&
	expect_count big200 1
'

test_expect_success RSS '300 MiB passes through in full but is not stored' '
	peak_rss_kb cachedo -v counted big300 sh -c "$gen300" 2>err | wc -c >size &&
	expect_rss_below $limit_kb &&
	expect_eq $((300 * MiB)) $(cat size) "byte count" &&
	expect_grep "^cachedo: miss, not stored" err &&
	peak_rss_kb cachedo counted big300 sh -c "$gen300" | wc -c >size &&
	expect_rss_below $limit_kb &&
	expect_eq $((300 * MiB)) $(cat size) "byte count" &&
	expect_count big300 2
'

test_expect_success RSS '200 MiB on --stdin is hashed and fed through in < 64 MiB RSS' '
	for run in miss hit; do
		sh -c "$gen200" | peak_rss_kb cachedo --stdin counted stdin200 wc -c >size &&
		expect_rss_below $limit_kb &&
		expect_eq $((200 * MiB)) $(cat size) "byte count" || exit 1
	done &&
	expect_count stdin200 1
'

test_expect_success '--max-output 1K: 2 KiB pass through, not stored, -v says so' '
	cachedo -v --max-output 1K counted maxout head -c 2048 /dev/zero >out 2>err &&
	expect_eq 2048 $(wc -c <out) "byte count" &&
	expect_lines 1 err &&
	expect_grep "^cachedo: miss, not stored" err &&
	cachedo -v --max-output 1K counted maxout head -c 2048 /dev/zero >out 2>err &&
	expect_eq 2048 $(wc -c <out) "byte count" &&
	expect_count maxout 2
'

test_expect_success '--max-output counts stderr too' '
	cachedo --max-output 1K counted maxerr sh -c "head -c 2048 /dev/zero >&2" 2>err &&
	cachedo --max-output 1K counted maxerr sh -c "head -c 2048 /dev/zero >&2" 2>err &&
	expect_eq 2048 $(wc -c <err) "byte count" &&
	expect_count maxerr 2
'

for size in 4096 4k 4K 4KB 4KiB 1M 1MiB 1G; do
	test_expect_success "--max-output $size stores a 2 KiB output" '
		cachedo --max-output $size counted max$size head -c 2048 /dev/zero >out &&
		cachedo --max-output $size counted max$size head -c 2048 /dev/zero >out &&
		expect_eq 2048 $(wc -c <out) "byte count" &&
		expect_count max$size 1
	'
done

test_done
