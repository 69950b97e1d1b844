#!/bin/sh
# Crash campaign: SIGKILL cachedo at random points while it stores outputs
# of about 1 KB, 300 KB and 50 MB (CAMPAIGN_KILLS kills, CAMPAIGN_LARGE of
# them on 50 MB; knobs in campaign.sh), now and then checking a run. Every
# answer a later run gives is byte-exact (stdout, the command's stderr,
# status), whether served or run; --gc then leaves no temp files, pending
# blobs or temp keys behind, and the entries stay exact.
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/campaign.sh"

case $test_backend in
sqlite | dir | mem | redis) ;;
*) skip_all "local backends and redis only" ;;
esac

kills=${CAMPAIGN_KILLS:-60}
large=${CAMPAIGN_LARGE:-3}
echo "# crash campaign [$test_backend]: seed $campaign_seed (CAMPAIGN_SEED=$campaign_seed replays), $kills kills, $large of them on 50 MB"

SMALL=1000 MEDIUM=300000 LARGE=52428800
# class_of ID: the output size of gen ID in this campaign.
size_of () {
	case $1 in 1?) echo $SMALL ;; 2?) echo $MEDIUM ;; *) echo $LARGE ;; esac
}

# Calibrate: how long one storing run of each size takes (timing only
# chooses where the kills land; the assertions do not depend on it).
ms_now () { echo $(($(date +%s%N) / 1000000)); }
for id in 10 20 30; do
	size=$(size_of $id)
	expect_gen $id "$size"
	best=
	for n in 1 2 3; do
		t0=$(ms_now)
		cachedo --ttl 1h --refresh gen $id "$size" >/dev/null 2>&1
		t=$(($(ms_now) - t0))
		test -n "$best" && test "$best" -le "$t" || best=$t
	done
	eval "run_ms_$id=\$best"
done
echo "# one storing run takes ${run_ms_10} ms (1 KB), ${run_ms_20} ms (300 KB), ${run_ms_30} ms (50 MB)"

landed=0 i=0
while [ $i -lt "$kills" ]; do
	i=$((i + 1))
	# Which output: the 50 MB one `large` times, spread over the run.
	if [ $((i * large / kills)) -ne $(((i - 1) * large / kills)) ]; then
		rand 2; id=$((30 + r)) cls=30
	else
		rand 2; cls=$((10 + 10 * r))
		rand 4; id=$((cls + r))
	fi
	size=$(size_of $id)
	eval "ms=\$run_ms_$cls"
	rand $((ms + 1)); delay=$r
	# Every run stores (--refresh): a new entry, or one over the old.
	spawn "$CACHEDO" --ttl 1h --refresh gen $id "$size" >/dev/null 2>&1
	pid=$!
	sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
	kill -KILL $pid 2>/dev/null
	wait $pid 2>/dev/null
	test $? != 137 || landed=$((landed + 1))
	# Half the time a check right away; else the next kill lands first.
	rand 2
	test $r -ne 0 || check_run $id "$size"
done

# Every output once more: each must be exact, served or run again.
for id in 10 11 12 13 20 21 22 23 30 31; do
	check_run $id "$(size_of $id)"
done

# leftovers: temp files, pending blobs or temp keys of dead writers.
leftovers () {
	case $test_backend in
	dir | mem) find "$STORE_PATH/v1" -name '.tmp-*' | wc -l ;;
	sqlite) python3 -c 'import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
pending = db.execute("SELECT count(*) FROM pending").fetchone()[0]
blobs = set(b for (b,) in db.execute("SELECT blob FROM entry WHERE bytes IS NULL"))
orphans = 0
try:
    big = sqlite3.connect("file:%s-big?mode=ro" % sys.argv[1], uri=True)
    orphans = sum(1 for (i,) in big.execute("SELECT id FROM chunk") if i >> 16 not in blobs)
except sqlite3.OperationalError:
    pass
if os.path.isdir(sys.argv[1] + "-blobs"):
    orphans += sum(1 for f in os.listdir(sys.argv[1] + "-blobs") if int(f, 16) not in blobs)
print(pending + orphans)' "$STORE_PATH" ;;
	redis) redis_cli --scan --pattern '*:tmp:*' | wc -l ;;
	esac
}
before=$(leftovers)
# Dead writers are told from live ones by their locks; a temp file not
# yet locked is given a second.
sleep 2
gc_status=$(cachedo --gc >"$TMP/gc.out" 2>&1; echo $?)
after=$(leftovers)
checked_before_gc=$checked
for id in 10 11 12 13 20 21 22 23 30 31; do
	check_run $id "$(size_of $id)"
done

echo "# crash campaign [$test_backend]: seed $campaign_seed: $kills kills tried ($landed landed while cachedo ran), $checked checked runs ($served served from the cache, $warned with a warning), $wrong wrong answers, $crashes crashes, $hangs hangs; leftovers $before before --gc, $after after"

test_expect_success "$kills kills: every answer byte-exact ($checked checked runs)" '
	campaign_failures &&
	expect_eq 0 $wrong "wrong answers" &&
	expect_eq 0 $crashes crashes &&
	expect_eq 0 $hangs hangs
'

test_expect_success 'the cache served entries after the kills' '
	test $served -gt 0
'

test_expect_success '--gc leaves no temp files, pending blobs or temp keys' '
	cat "$TMP/gc.out" &&
	expect_eq 0 "$gc_status" "--gc status" &&
	expect_eq 0 "$after" "leftovers after --gc"
'

test_done
