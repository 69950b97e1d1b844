#!/bin/sh
# SIGKILL of cachedo at any point of a large store never leaves a partial
# entry: the next run either misses or replays the whole output, and stores
# it so that the run after that is a hit.
. "$(dirname "$0")/lib.sh"

MiB=1048576
gen="i=0; while [ \$i -lt 64 ]; do head -c $MiB /dev/zero; i=\$((i + 1)); done | tr '\\0' z"
sh -c "$gen" | cksum >"$TMP/expect"

# Spread the kills over the length of one full run (timing only chooses
# where the kills land; the assertions do not depend on it).
cachedo --scope warm-up sh -c "$gen" >/dev/null 2>&1
start=$(date +%s%N)
cachedo --scope calibrate sh -c "$gen" >/dev/null 2>&1
run_ms=$((($(date +%s%N) - start) / 1000000))
echo "# one run of 64 MiB takes ${run_ms} ms"

for i in 0 1 2 3 4 5 6 7 8 9; do
	delay_ms=$((run_ms * i / 9))
	test_expect_success "SIGKILL of cachedo after ${delay_ms} ms leaves no partial entry" '
		spawn cachedo counted crash$i sh -c "$gen" >/dev/null 2>&1 &&
		pid=$! &&
		sleep $((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000))) &&
		{ kill -KILL $pid 2>/dev/null && echo $i >>"$TMP/live" || :; } &&
		{ wait $pid || :; } &&
		timeout 60 cachedo counted crash$i sh -c "$gen" | cksum >sum &&
		expect_cmp "$TMP/expect" sum &&
		runs=$(count crash$i) &&
		timeout 60 cachedo counted crash$i sh -c "$gen" | cksum >sum &&
		expect_cmp "$TMP/expect" sum &&
		expect_count crash$i $runs
	'
done
echo "# $(cat "$TMP/live" 2>/dev/null | wc -l) of the kills landed while cachedo ran"

test_done
