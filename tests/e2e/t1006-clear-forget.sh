#!/bin/sh
# Removing entries: --clear drops everything, --forget one command's entry.
. "$(dirname "$0")/lib.sh"

test_expect_success '--clear removes every entry' '
	cachedo counted clear1 &&
	cachedo counted clear2 &&
	expect_status 0 cachedo --clear &&
	cachedo counted clear1 &&
	cachedo counted clear2 &&
	expect_count clear1 2 &&
	expect_count clear2 2 &&
	cachedo counted clear1 &&
	expect_count clear1 2
'

test_expect_success '--clear on an empty cache succeeds' '
	expect_status 0 cachedo --clear &&
	expect_status 0 cachedo --clear
'

test_expect_success '--forget drops only that command, and runs nothing' '
	cachedo counted forget1 &&
	cachedo counted forget2 &&
	expect_status 0 cachedo --forget counted forget1 &&
	expect_count forget1 1 &&
	cachedo counted forget1 &&
	cachedo counted forget2 &&
	expect_count forget1 2 &&
	expect_count forget2 1
'

test_expect_success '--forget takes the same key options as a run' '
	cachedo --scope s counted forget3 &&
	cachedo counted forget3 &&
	expect_status 0 cachedo --scope s --forget -- counted forget3 &&
	cachedo counted forget3 &&
	expect_count forget3 2 &&
	cachedo --scope s counted forget3 &&
	expect_count forget3 3
'

test_expect_success '--clear -v says how many entries and bytes went' '
	cachedo --clear &&
	cachedo counted v1 sh -c "head -c 3000 /dev/zero" >/dev/null &&
	cachedo counted v2 >/dev/null &&
	cachedo --scope vs counted v3 >/dev/null &&
	expect_status 0 cachedo --clear >out 2>err &&
	expect_lines 0 out &&
	expect_lines 0 err &&
	cachedo counted v1 sh -c "head -c 3000 /dev/zero" >/dev/null &&
	cachedo counted v2 >/dev/null &&
	cachedo --scope vs counted v3 >/dev/null &&
	if test "$test_backend" = exec; then
		expect_status 0 cachedo -v --clear --scope vs >out 2>err &&
		expect_grep -x "cachedo: cleared the cache (this backend cannot count its entries)" err
	else
		expect_status 0 cachedo -v --clear --scope vs >out 2>err &&
		expect_grep -x "cachedo: cleared 1 entry ([0-9]* B)" err &&
		expect_status 0 cachedo -v --clear >out 2>err &&
		expect_grep -x "cachedo: cleared 2 entries (3\.[0-9] KiB)" err &&
		expect_status 0 cachedo -v --clear >out 2>err &&
		expect_grep -x "cachedo: cleared 0 entries (0 B)" err
	fi &&
	expect_lines 0 out
'

test_expect_success '--forget -v says whether there was an entry' '
	cachedo counted fv >/dev/null &&
	expect_status 0 cachedo --forget counted fv >out 2>err &&
	expect_lines 0 err &&
	cachedo counted fv >/dev/null &&
	expect_status 0 cachedo -v --forget counted fv >out 2>err &&
	expect_eq "cachedo: forgot 1 entry" "$(cat err)" &&
	expect_status 0 cachedo -v --forget counted fv >out 2>err &&
	expect_eq "cachedo: no entry to forget" "$(cat err)" &&
	expect_lines 0 out &&
	expect_count fv 2
'

test_expect_success 'admin modes: 1 when the cache fails, 125 on bad usage' '
	expect_status 1 cachedo --cache sqlite:/proc/nope/cache.db --clear 2>err &&
	expect_lines 1 err &&
	expect_status 1 cachedo --cache sqlite:/proc/nope/cache.db --forget counted f 2>err &&
	expect_lines 1 err &&
	expect_status 125 cachedo --clear counted f 2>err &&
	expect_lines 1 err &&
	expect_status 125 cachedo --forget 2>err &&
	expect_lines 1 err &&
	expect_count f 0
'

test_expect_success '--forget forgets even with --no-cache' '
	cachedo counted nocacheforget &&
	expect_status 0 cachedo --no-cache --forget counted nocacheforget &&
	cachedo counted nocacheforget &&
	expect_count nocacheforget 2
'

test_done
