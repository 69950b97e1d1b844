#!/bin/sh
# Single-flight misses and stale-while-revalidate: identical commands that
# start together run once; expired entries are served while one detached
# refresh runs. Runs are counted by side effect (counter files).
. "$(dirname "$0")/lib.sh"

# slow NAME SECONDS STATUS: counted; sleeps, prints to both streams, exits.
cat >"$TMP/bin/slow" <<EOF
#!/bin/sh
echo run >>"$TMP/count.\$1"
sleep \$2
echo "out \$1"
echo "err \$1" >&2
exit \$3
EOF
# first-slow NAME: the first run sleeps 30 s (and records its pid so the
# test can end it), later runs 0.2 s; prints which run it was.
cat >"$TMP/bin/first-slow" <<EOF
#!/bin/sh
echo run >>"$TMP/count.\$1"
n=\$((\$(wc -l <"$TMP/count.\$1")))
if [ \$n = 1 ]; then echo \$\$ >"$TMP/first.\$1"; sleep 30; else sleep 0.2; fi
echo "\$1 run \$n"
EOF
# one-at-a-time NAME SECONDS STATUS: counted; notes in overlap.NAME when
# another run of NAME is still going, sleeps, exits with STATUS.
cat >"$TMP/bin/one-at-a-time" <<EOF
#!/bin/sh
echo run >>"$TMP/count.\$1"
mkdir "$TMP/running.\$1" 2>/dev/null || echo overlap >>"$TMP/overlap.\$1"
sleep \$2
rmdir "$TMP/running.\$1" 2>/dev/null
exit \$3
EOF
# versions NAME: run 1 prints v1 at once and exits 0; later runs wait (up
# to 10 s) for the test to create go.NAME, exit with $LATER_STATUS
# (default 0), print v<N> and then touch done.NAME.
cat >"$TMP/bin/versions" <<EOF
#!/bin/sh
echo run >>"$TMP/count.\$1"
n=\$((\$(wc -l <"$TMP/count.\$1")))
if [ \$n = 1 ]; then echo v1; exit 0; fi
i=0
while [ ! -e "$TMP/go.\$1" ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
echo v\$n
touch "$TMP/done.\$1"
exit \${LATER_STATUS:-0}
EOF
# gated NAME: counted; waits (up to 30 s) for the test to create go.NAME.
cat >"$TMP/bin/gated" <<EOF
#!/bin/sh
echo run >>"$TMP/count.\$1"
i=0
while [ ! -e "$TMP/go.\$1" ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i + 1)); done
echo "out \$1"
EOF
chmod 755 "$TMP/bin/slow" "$TMP/bin/first-slow" "$TMP/bin/versions" \
	"$TMP/bin/one-at-a-time" "$TMP/bin/gated"

# at_least NAME N: NAME ran N times or more.
at_least () { [ "$(count "$1")" -ge "$2" ]; }

# wait_count NAME N: polls (up to 10 s) until NAME ran N times.
wait_count () { wait_until at_least "$1" "$2"; }

# stored_is NAME VALUE: a fresh hit of `versions NAME` answers VALUE (its
# run 1 is stored, so this never runs the command).
stored_is () { [ "$(cachedo --ttl 1h versions "$1")" = "$2" ]; }

# expect_all PREFIX N CONTENT: files PREFIX.1 .. PREFIX.N all hold CONTENT.
expect_all () {
	i=0
	while [ $i -lt "$2" ]; do
		i=$((i + 1))
		expect_eq "$3" "$(cat "$1.$i")" "$1.$i" || return 1
	done
}

setup_backend "$test_backend"
rm -f st.* out.* err.*

test_expect_success '50 identical misses at once run the command once' '
	i=0 &&
	while [ $i -lt 50 ]; do
		i=$((i + 1))
		{ st=0; cachedo slow flight 1 3 >out.$i 2>err.$i || st=$?
		  echo $st >st.$i; } &
	done &&
	wait &&
	expect_count flight 1 &&
	expect_all out 50 "out flight" &&
	expect_all err 50 "err flight" &&
	expect_all st 50 3
'

# json FILE EXPR: prints EXPR evaluated by python3 on the JSON in FILE (d).
json () {
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

test_expect_success 'a hit after waiting: -v names the wait, --stats counts it apart' '
	cachedo --zero-stats &&
	# 3 s: time enough for the second call to start while the first runs
	cachedo slow waited 3 0 >out.first 2>&1 &
	first=$! &&
	wait_count waited 1 &&
	cachedo -v slow waited 3 0 >out.2 2>err.2 &&
	wait "$first" &&
	expect_count waited 1 &&
	# A Redis lease does not say which process holds it.
	if test "$test_backend" = redis; then
		expect_grep -x "cachedo: hit after waiting [0-9]*\.[0-9]s" err.2
	else
		expect_grep -x "cachedo: hit after waiting [0-9]*\.[0-9]s for pid $first" err.2
	fi &&
	cachedo --stats --json >stats.json &&
	cachedo --list --json >list.json &&
	expect_eq 1 "$(json stats.json "d[\"hits\"]")" hits &&
	expect_eq 1 "$(json stats.json "d[\"waits\"]")" waits &&
	waited=$(json stats.json "d[\"waited_ms\"]") &&
	saved=$(json stats.json "d[\"saved_ms\"]") &&
	ran=$(json list.json "[r for r in d if r[\"argv\"][1] == \"waited\"][0][\"duration_ms\"]") &&
	test "$waited" -gt 0 &&
	# Saved: what the run took, less the wait (which may be longer).
	expect_eq "$((ran > waited ? ran - waited : 0))" "$saved" "time saved" &&
	cachedo --stats >stats.txt &&
	expect_grep -x "waited      1 for another run, total [0-9]*\.[0-9]s" stats.txt &&
	expect_grep -x "time saved  [0-9][^ ]*" stats.txt
'

test_expect_success 'hits take no lock: a hit is answered while a run holds it' '
	cachedo --ttl 1h slow hitnolock 0 0 >/dev/null 2>&1 &&
	{ cachedo --refresh slow hitnolock 2 0 >/dev/null 2>&1 & } &&
	wait_count hitnolock 2 &&
	cachedo --ttl 1h slow hitnolock 0 0 >out 2>/dev/null &&
	expect_eq "out hitnolock" "$(cat out)" &&
	expect_count hitnolock 2 &&
	wait
'

test_expect_success 'waiters take over when the holder is killed' '
	{ cachedo first-slow killed >/dev/null 2>&1 & } &&
	holder=$! &&
	wait_until test -s "$TMP/first.killed" &&
	i=0 &&
	while [ $i -lt 5 ]; do
		i=$((i + 1))
		{ st=0; cachedo first-slow killed >out.$i 2>/dev/null || st=$?
		  echo $st >st.$i; } &
	done &&
	sleep 0.5 &&
	expect_count killed 1 &&
	kill -KILL $holder &&
	kill "$(cat "$TMP/first.killed")" &&
	wait &&
	expect_count killed 2 &&
	expect_all out 5 "killed run 2" &&
	expect_all st 5 0
'

test_expect_success 'an unstored result is run again by one waiter at a time' '
	{ cachedo --no-cache-failures one-at-a-time nostore 1 5 >/dev/null 2>&1 & } &&
	wait_count nostore 1 &&
	i=0 &&
	while [ $i -lt 3 ]; do
		i=$((i + 1))
		{ st=0
		  cachedo --no-cache-failures one-at-a-time nostore 1 5 \
			>/dev/null 2>&1 || st=$?
		  echo $st >st.$i; } &
	done &&
	wait &&
	expect_all st 3 5 &&
	expect_count nostore 4 &&
	test ! -e "$TMP/overlap.nostore"
'

test_expect_success '--lock-timeout: a waiter gives up and runs uncached' '
	{ cachedo slow patience 3 4 >/dev/null 2>&1 & } &&
	wait_count patience 1 &&
	expect_status 4 cachedo --lock-timeout 200ms slow patience 3 4 >out 2>err &&
	expect_count patience 2 &&
	expect_eq "out patience" "$(cat out)" &&
	expect_grep "gave up waiting" err &&
	wait
'

test_expect_success 'concurrent --refresh calls run once' '
	cachedo --ttl 1h slow refresh 0 0 >/dev/null 2>&1 &&
	i=0 &&
	while [ $i -lt 5 ]; do
		i=$((i + 1))
		cachedo --refresh slow refresh 1 0 >out.$i 2>/dev/null &
	done &&
	wait &&
	expect_count refresh 2 &&
	expect_all out 5 "out refresh"
'

test_expect_success 'a waiter on a terminal shows a status line' '
	command -v script >/dev/null &&
	{ cachedo gated status >/dev/null 2>&1 & } &&
	wait_count status 1 &&
	{ script -qec "cachedo gated status" /dev/null >tty-out & } &&
	wait_until grep -q "waiting for" tty-out &&
	touch "$TMP/go.status" &&
	wait &&
	expect_grep "waiting for .gated." tty-out &&
	case $test_backend in
	redis) ;; # the lock is a lease on the server: no local pid to show
	*) expect_grep "waiting for .gated. (pid [0-9]*)" tty-out ;;
	esac &&
	expect_grep "out status" tty-out &&
	expect_count status 1
'

test_expect_success 'no status line when stderr is not a terminal' '
	{ cachedo slow status2 2 0 >/dev/null 2>&1 & } &&
	wait_count status2 1 &&
	cachedo slow status2 2 0 >out 2>err &&
	expect_eq "err status2" "$(cat err)" &&
	wait
'

test_expect_success '20 stale hits at once start one refresh' '
	cachedo --ttl 300ms --stale 1h versions stale20 >out &&
	expect_eq v1 "$(cat out)" &&
	sleep 0.4 &&
	i=0 &&
	while [ $i -lt 20 ]; do
		i=$((i + 1))
		cachedo --ttl 300ms --stale 1h versions stale20 >out.$i &
	done &&
	wait &&
	expect_all out 20 v1 &&
	touch "$TMP/go.stale20" &&
	wait_until stored_is stale20 v2 &&
	expect_count stale20 2
'

test_expect_success 'a stale answer does not wait for its refresh' '
	cachedo --ttl 100ms --stale 1h versions detached >/dev/null &&
	sleep 0.2 &&
	x=$(cachedo -v --ttl 100ms --stale 1h versions detached 2>err) &&
	expect_eq v1 "$x" &&
	test ! -e "$TMP/done.detached" &&
	expect_grep -x "cachedo: stale (age [0-9][^,]*, refreshing in the background)" err &&
	touch "$TMP/go.detached" &&
	wait_until stored_is detached v2
'

test_expect_success 'a failing refresh keeps the stored good result' '
	cachedo --ttl 100ms --stale 1h versions flaky >/dev/null &&
	sleep 0.2 &&
	LATER_STATUS=1 &&
	export LATER_STATUS &&
	cachedo --ttl 100ms --stale 1h --ignore-env LATER_STATUS versions flaky >out &&
	expect_eq v1 "$(cat out)" &&
	touch "$TMP/go.flaky" &&
	wait_for "$TMP/done.flaky" &&
	sleep 0.2 &&
	expect_status 0 cachedo --ttl 100ms --stale 1h --ignore-env LATER_STATUS versions flaky >out &&
	expect_eq v1 "$(cat out)"
'

test_done
