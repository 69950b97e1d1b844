#!/bin/sh
# --warm: a detached refresh started now; returns at once with no output;
# single-flight with any other run of the command. Runs are counted by side
# effect (counter files), background work is awaited by polling.
. "$(dirname "$0")/lib.sh"

# listed NAME: the cache holds an entry of `counted NAME ...`.
listed () { cachedo --list 2>/dev/null | grep -q " counted $1\( \|\$\)"; }
# ran NAME N: `counted NAME` ran N times.
ran () { test "$(count "$1")" = "$2"; }

test_expect_success '--warm fills the cache in the background, silently' '
	expect_status 0 cachedo --warm counted w1 >out 2>err &&
	expect_lines 0 out &&
	expect_lines 0 err &&
	wait_until listed w1 &&
	expect_count w1 1 &&
	cachedo counted w1 >out &&
	expect_eq "w1 run 1" "$(cat out)" &&
	expect_count w1 1
'

test_expect_success '--warm runs again over a fresh entry' '
	cachedo counted w2 >/dev/null &&
	expect_count w2 1 &&
	expect_status 0 cachedo --warm counted w2 >out 2>err &&
	expect_lines 0 out &&
	wait_until ran w2 2 &&
	wait_until sh -c "test \"\$(cachedo counted w2)\" = \"w2 run 2\"" &&
	expect_count w2 2
'

# w3: waits (up to 20 s) for $0/go.w3, which the test creates only once
# --warm has returned, then prints late and creates $0/done.w3.
w3='i=0
while ! test -e "$0/go.w3" && test $i -lt 200; do sleep 0.1; i=$((i + 1)); done
echo late; touch "$0/done.w3"'

test_expect_success '--warm returns before the command ends' '
	x=$(cachedo --warm counted w3 sh -c "$w3" "$TMP") &&
	expect_eq "" "$x" &&
	test ! -e "$TMP/done.w3" &&
	touch "$TMP/go.w3" &&
	wait_for "$TMP/done.w3" &&
	wait_until listed w3 &&
	expect_eq late "$(cachedo counted w3 sh -c "$w3" "$TMP")" &&
	expect_count w3 1
'

# warming NAME: a --warm of `counted NAME` whose command line names this
# test's dir is still running (its detached child keeps the command line;
# the brackets keep pgrep from matching the shell that runs it).
warming () { pgrep -f "[c]achedo --warm counted $1 .*$TMP/" >/dev/null; }

test_expect_success '--warm starts nothing while an identical run holds the lock' '
	cachedo counted w4 sh -c "while ! test -e \"$TMP/go.w4\"; do sleep 0.05; done; echo first" >out.first &
	first=$! &&
	wait_until ran w4 1 &&
	expect_status 0 cachedo --warm counted w4 sh -c "while ! test -e \"$TMP/go.w4\"; do sleep 0.05; done; echo first" &&
	# the warm-up finds the lock taken and leaves
	wait_until eval "! warming w4" &&
	touch "$TMP/go.w4" &&
	wait "$first" &&
	expect_eq first "$(cat out.first)" &&
	sleep 0.5 &&
	expect_count w4 1
'

test_expect_success 'a failing warm-up keeps the stored successful result' '
	cachedo --ignore-env LATER counted w5 sh -c "echo good; exit \${LATER:-0}" >/dev/null &&
	LATER=3 cachedo --ignore-env LATER --warm counted w5 sh -c "echo good; exit \${LATER:-0}" &&
	wait_until ran w5 2 &&
	sleep 0.3 &&
	expect_status 0 cachedo --ignore-env LATER counted w5 sh -c "echo good; exit \${LATER:-0}" >out &&
	expect_eq good "$(cat out)" &&
	expect_count w5 2
'

test_expect_success '--warm of a missing command fails at once; --warm needs a command' '
	expect_status 127 cachedo --warm no-such-command-w6 >out 2>err &&
	expect_lines 1 err &&
	expect_grep no-such-command-w6 err &&
	expect_status 125 cachedo --warm 2>err &&
	expect_lines 1 err &&
	expect_status 1 cachedo --no-cache --warm counted w6 2>err &&
	expect_grep "cache is disabled" err &&
	expect_status 125 cachedo --warm --forget counted w6 2>err &&
	expect_status 125 cachedo --read-only --warm counted w6 2>err &&
	expect_grep "cannot change a read-only cache" err &&
	expect_status 1 cachedo --cache sqlite:/proc/nope/cache.db --warm counted w6 2>err &&
	expect_lines 1 err &&
	sleep 0.3 &&
	expect_count w6 0
'

test_done
