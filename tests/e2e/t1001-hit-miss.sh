#!/bin/sh
# The basic contract: a miss runs and stores, a hit replays without running.
. "$(dirname "$0")/lib.sh"

test_expect_success 'the first run misses, the second hits with the same output' '
	expect_status 0 cachedo counted basic >out1 &&
	expect_count basic 1 &&
	expect_eq "basic run 1" "$(cat out1)" &&
	expect_status 0 cachedo counted basic >out2 &&
	expect_count basic 1 &&
	expect_cmp out1 out2
'

test_expect_success '-v says miss, stored and then hit (age ...)' '
	cachedo -v counted verbose >out 2>err1 &&
	expect_lines 1 err1 &&
	expect_grep "^cachedo: miss, stored" err1 &&
	cachedo -v counted verbose >out 2>err2 &&
	expect_lines 1 err2 &&
	expect_grep "^cachedo: hit (age [0-9]" err2 &&
	expect_count verbose 1
'

test_expect_success 'without -v a run prints nothing of its own' '
	cachedo counted quiet >out 2>err &&
	cachedo counted quiet >out 2>err2 &&
	expect_lines 0 err &&
	expect_lines 0 err2 &&
	expect_count quiet 1
'

test_expect_success '--refresh runs again and stores the new result' '
	cachedo counted refresh >out &&
	cachedo --refresh counted refresh >out &&
	expect_count refresh 2 &&
	expect_eq "refresh run 2" "$(cat out)" &&
	cachedo counted refresh >out &&
	expect_count refresh 2 &&
	expect_eq "refresh run 2" "$(cat out)"
'

test_expect_success '--no-cache runs every time and stores nothing' '
	cachedo --no-cache counted nocache >out &&
	cachedo --no-cache counted nocache >out &&
	expect_count nocache 2 &&
	cachedo counted nocache >out &&
	expect_count nocache 3 &&
	expect_eq "nocache run 3" "$(cat out)"
'

test_expect_success '--no-cache does not read an existing entry' '
	cachedo counted nocache2 >out &&
	cachedo --no-cache counted nocache2 >out &&
	expect_count nocache2 2
'

test_expect_success 'CACHEDO_DISABLE=1 runs every time and stores nothing' '
	CACHEDO_DISABLE=1 cachedo counted disable >out &&
	CACHEDO_DISABLE=1 cachedo counted disable >out &&
	expect_count disable 2 &&
	cachedo counted disable >out &&
	expect_count disable 3 &&
	CACHEDO_DISABLE=1 cachedo counted disable >out &&
	expect_count disable 4
'

test_expect_success '--no-cache gathers no key: --file and --env are left alone' '
	deep=deep && i=0 &&
	while [ $i -lt 65 ]; do deep=$deep/d; i=$((i + 1)); done &&
	mkdir -p $deep &&
	expect_status 125 cachedo --file deep counted nokey 2>err &&
	expect_grep "cannot hash --file .deep." err &&
	expect_status 0 cachedo --no-cache --file deep counted nokey >out 2>err &&
	expect_lines 0 err &&
	CACHEDO_DISABLE=1 cachedo --file deep --env NOSUCH counted nokey >out 2>err &&
	expect_lines 0 err &&
	expect_count nokey 2 &&
	cachedo --no-cache --pure --env NOSUCH counted nokey >out 2>err &&
	expect_grep -x "cachedo: warning: --env .NOSUCH. matches no variable" err &&
	expect_count nokey 3 &&
	cachedo --key counted nokey >k1 &&
	cachedo --no-cache --key counted nokey >k2 &&
	expect_cmp k1 k2 &&
	expect_status 125 cachedo --no-cache --key --file deep counted nokey 2>err &&
	expect_grep "cannot hash --file .deep." err
'

test_expect_success 'argv boundaries are part of the key' '
	cachedo --key sh -c "x" a "b c" >k1 &&
	cachedo --key sh -c "x" "a b" c >k2 &&
	cachedo --key sh -c "x" "a b c" >k3 &&
	! cmp -s k1 k2 &&
	! cmp -s k1 k3 &&
	! cmp -s k2 k3 &&
	cachedo counted argv sh -c "echo \"\$0|\$1\"" a "b c" >out1 &&
	cachedo counted argv sh -c "echo \"\$0|\$1\"" "a b" c >out2 &&
	expect_count argv 2 &&
	expect_eq "a|b c" "$(cat out1)" &&
	expect_eq "a b|c" "$(cat out2)" &&
	cachedo counted argv sh -c "echo \"\$0|\$1\"" a "b c" >out3 &&
	expect_count argv 2 &&
	expect_cmp out1 out3
'

test_expect_success 'an empty argument is not the same as no argument' '
	cachedo --key echo a >k1 &&
	cachedo --key echo a "" >k2 &&
	! cmp -s k1 k2
'

test_expect_success '--key prints 64 hex digits, is stable and runs nothing' '
	expect_status 0 cachedo --key counted key >k1 &&
	expect_status 0 cachedo --key counted key >k2 &&
	expect_lines 1 k1 &&
	expect_grep -x "[0-9a-f]\{64\}" k1 &&
	expect_cmp k1 k2 &&
	cachedo --key counted key2 >k3 &&
	! cmp -s k1 k3 &&
	expect_count key 0
'

test_done
