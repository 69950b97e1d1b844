#!/bin/sh
# The exec: backend's bounds: a helper's answer is read no further than
# the largest entry --max-output allows, every call has an overall
# deadline, and a put counts as stored only when the helper read the whole
# entry and exited 0. Runs with CACHEDO_TEST_CACHE=exec.
. "$(dirname "$0")/lib.sh"

test "$test_backend" = exec || skip_all "exec only (CACHEDO_TEST_CACHE=exec)"
unset CACHEDO_CACHE

job='echo out; echo err >&2; exit 3'

# helper NAME <<EOF: a helper script $TMP/bin/NAME from stdin.
helper () {
	{ echo '#!/bin/sh'; cat; } >"$TMP/bin/$1" && chmod 755 "$TMP/bin/$1"
}

# A time limit on cachedo itself, so that a regression fails, not hangs.
limited () {
	timeout -s KILL 60 "$@"
}

test_expect_success 'a get answer larger than any entry: killed, one warning, run uncached' '
	helper big <<-EOF &&
	case \$1 in
	get) head -c 67108864 /dev/zero; echo done >"$TMP/big.done"; exit 0 ;;
	put) cat >/dev/null ;;
	esac
	EOF
	expect_fallback big -c exec:big --max-output 1K &&
	expect_grep "get: answered more than .*--max-output 1.0 KiB" err &&
	test ! -e "$TMP/big.done" &&
	expect_count big 1
'

test_expect_success 'a get that never ends is cut at the bound, not at a full disk' '
	helper zero <<-\EOF &&
	case $1 in get) exec cat /dev/zero ;; put) cat >/dev/null ;; esac
	EOF
	limited cachedo -c exec:zero --max-output 1K counted zero sh -c "$job" >out 2>err ||
		test $? = 3 &&
	expect_eq out "$(cat out)" &&
	expect_lines 2 err &&
	expect_grep "^cachedo: warning: .*get: answered more than" err
'

test_expect_success 'a get that trickles a byte at a time meets the overall deadline' '
	helper trickle <<-\EOF &&
	case $1 in
	get) while :; do printf x; sleep 0.1; done ;;
	put) cat >/dev/null ;;
	esac
	EOF
	CACHEDO_EXEC_TIMEOUT=2s &&
	export CACHEDO_EXEC_TIMEOUT &&
	limited cachedo -c exec:trickle counted trickle sh -c "$job" >out 2>err ||
		test $? = 3 &&
	expect_eq out "$(cat out)" &&
	expect_lines 2 err &&
	expect_grep "^cachedo: warning: .*get: still running after .*; killed it" err
'

test_expect_success 'a put that trickles its reading meets the overall deadline' '
	helper slowput <<-\EOF &&
	case $1 in
	get) exit 1 ;;
	put) while dd bs=4096 count=1 of=/dev/null 2>/dev/null; do sleep 0.1; done ;;
	esac
	EOF
	CACHEDO_EXEC_TIMEOUT=2s &&
	export CACHEDO_EXEC_TIMEOUT &&
	limited cachedo -c exec:slowput counted slowput sh -c "head -c 1000000 /dev/zero; exit 3" >out 2>err ||
		test $? = 3 &&
	expect_eq 1000000 $(wc -c <out) "byte count" &&
	expect_lines 1 err &&
	expect_grep "^cachedo: warning: cannot store .*put: still running after" err
'

# expect_put_fails NAME: the put of helper NAME fails with one warning and
# is counted as an error, and the next run misses.
expect_put_fails () {
	expect_status 3 cachedo -c "exec:$1" counted "$1" sh -c "$job" >out 2>err &&
	expect_eq out "$(cat out)" &&
	expect_lines 2 err &&
	expect_grep "^cachedo: warning: cannot store .*put: exit status 0, but .* not read" err &&
	cachedo -c "exec:$1" --stats --json >stats &&
	expect_grep "\"errors\":1," stats &&
	expect_status 3 cachedo -c "exec:$1" counted "$1" sh -c "$job" >out 2>err &&
	expect_count "$1" 2
}

# A helper that stores what it read under $TMP/store, whatever came in.
store_helper () {
	helper "$1" <<-EOF
	case \$1 in
	get) test -f "$TMP/\$2" || exit 1; cat "$TMP/\$2" ;;
	put) $2 ;;
	stats) ;;
	esac
	EOF
}

test_expect_success 'a put that exits 0 without reading is not stored' '
	store_helper noread "exit 0" &&
	expect_put_fails noread
'

test_expect_success 'a put that reads part of the entry and exits 0 is not stored' '
	store_helper partial "head -c 10 >\"$TMP/\$2\"" &&
	expect_put_fails partial
'

test_expect_success 'a put that closes its stdin early and exits 0 is not stored' '
	store_helper closes "exec 0<&-; sleep 0.2; exit 0" &&
	expect_put_fails closes
'

test_expect_success 'a put of a large entry that stops reading is not stored' '
	helper halfbig <<-\EOF &&
	case $1 in get) exit 1 ;; put) head -c 100000 >/dev/null; exit 0 ;; esac
	EOF
	expect_status 3 cachedo -c exec:halfbig counted halfbig sh -c "head -c 1000000 /dev/zero; exit 3" >out 2>err &&
	expect_eq 1000000 $(wc -c <out) "byte count" &&
	expect_lines 1 err &&
	expect_grep "^cachedo: warning: cannot store .*not read" err
'

test_expect_success 'a put that reads the whole entry and exits 0 is stored' '
	store_helper whole "cat >\"$TMP/\$2\"" &&
	expect_status 3 cachedo -v -c exec:whole counted whole sh -c "$job" >out 2>err &&
	expect_grep "miss, stored" err &&
	expect_status 3 cachedo -v -c exec:whole counted whole sh -c "$job" >out 2>err &&
	expect_grep "^cachedo: hit" err &&
	expect_count whole 1
'

test_done
