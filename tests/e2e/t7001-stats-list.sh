#!/bin/sh
# --stats, --list, --zero-stats, --gc --max-size and the automatic upkeep;
# why a miss missed (-v, --explain -v); a hit writes one usage record and
# nothing else.
. "$(dirname "$0")/lib.sh"

# json FILE EXPR: prints EXPR evaluated by python3 on the JSON in FILE (d).
json () {
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# stat_row NAME FILE: the value of row NAME of a --stats table.
stat_row () {
	sed -n "s/^$1  *//p" "$2"
}

# usage_file: the file of per-run records of the cache under test.
usage_file () {
	find "$TMP" -name '*-usage' -type f | head -n 1
}

# Backends that keep no counters of their own count in a local usage file,
# which also dates each entry's last use for --max-size and the upkeep.
"$CACHEDO" true && "$CACHEDO" --clear && "$CACHEDO" --zero-stats || exit 1
if [ -n "$(find "$TMP" -name '*-usage' -type f)" ]; then
	test_set_prereq LOCAL_USAGE
fi
# Traced with strace where it runs (make deps installs it).
if test_have_prereq LOCAL_USAGE && command -v strace >/dev/null 2>&1 &&
	strace -o /dev/null true 2>/dev/null; then
	test_set_prereq TRACED_USAGE
fi
# --list streams: newest first where the store keeps an order by time.
case $CACHEDO_CACHE in
sqlite:* | exec:*) test_set_prereq NEWEST_FIRST ;;
esac

# The filler of the scale benchmarks (bench/fill.c; make test builds it and
# names it in CACHEDO_TEST_FILL) writes real entries through the library,
# thousands a second. Not under the sanitizers, which reserve address space
# far beyond any ulimit -v.
if [ -n "$test_fill" ] && [ -x "$test_fill" ] && [ -z "$test_sanitize" ]; then
	case $CACHEDO_CACHE in
	exec:*) ;;
	sqlite:*) test_set_prereq FILL && test_set_prereq SQLITE_FILL ;;
	*) test_set_prereq FILL ;;
	esac
fi

test_expect_success 'a fresh cache shows zero counters' '
	expect_status 0 cachedo --stats >out &&
	expect_eq 0 "$(stat_row hits out)" hits &&
	expect_eq 0 "$(stat_row misses out)" misses &&
	expect_eq - "$(stat_row "hit rate" out)" "hit rate" &&
	expect_status 0 cachedo --stats --json >out.json &&
	python3 -m json.tool out.json >/dev/null &&
	expect_eq None "$(json out.json "d[\"hit_rate\"]")" "hit rate"
'

test_expect_success 'hits, misses and the hit rate after a scripted run' '
	cachedo counted a >/dev/null &&
	cachedo counted a >/dev/null &&
	cachedo counted a >/dev/null &&
	cachedo counted b >/dev/null &&
	cachedo counted b >/dev/null &&
	cachedo counted c >/dev/null &&
	expect_count a 1 && expect_count b 1 && expect_count c 1 &&
	expect_status 0 cachedo --stats >out &&
	expect_eq 3 "$(stat_row hits out)" hits &&
	expect_eq 3 "$(stat_row misses out)" misses &&
	expect_eq 0 "$(stat_row stale out)" stale &&
	expect_eq 50.0% "$(stat_row "hit rate" out)" "hit rate" &&
	expect_eq 3 "$(stat_row entries out)" entries &&
	expect_eq 0 "$(stat_row errors out)" errors
'

test_expect_success '--stats --json parses and carries the numbers of the table' '
	expect_status 0 cachedo --stats >out &&
	expect_status 0 cachedo --stats --json >out.json &&
	python3 -m json.tool out.json >/dev/null &&
	expect_eq "$(stat_row hits out)" "$(json out.json "d[\"hits\"]")" hits &&
	expect_eq "$(stat_row misses out)" "$(json out.json "d[\"misses\"]")" misses &&
	expect_eq "$(stat_row entries out)" "$(json out.json "d[\"entries\"]")" entries &&
	expect_eq 0.5 "$(json out.json "d[\"hit_rate\"]")" "hit rate" &&
	expect_eq 0 "$(json out.json "d[\"errors\"]")" errors &&
	expect_eq 0 "$(json out.json "d[\"errors_by_kind\"][\"timeout\"]")" timeouts
'

test_expect_success 'time saved adds up the original run time of every hit' '
	cachedo --zero-stats &&
	cachedo counted slow sh -c "sleep 0.4; echo slow" >/dev/null &&
	cachedo counted slow sh -c "sleep 0.4; echo slow" >/dev/null &&
	cachedo counted slow sh -c "sleep 0.4; echo slow" >/dev/null &&
	expect_count slow 1 &&
	cachedo --stats --json >out.json &&
	saved=$(json out.json "d[\"saved_ms\"]") &&
	test "$saved" -ge 800 &&
	test "$saved" -lt 60000 &&
	cachedo --stats >out &&
	expect_grep -x "time saved  [0-9][0-9a-z ]*" out &&
	expect_no_grep "saved.* saved" out &&
	expect_grep -x "waited      0 for another run, total 0\.0s" out
'

test_expect_success '--zero-stats resets the counters, not the entries' '
	cachedo counted z >/dev/null &&
	cachedo counted z >/dev/null &&
	expect_status 0 cachedo --zero-stats &&
	cachedo --stats >out &&
	expect_eq 0 "$(stat_row hits out)" hits &&
	expect_eq 0 "$(stat_row misses out)" misses &&
	cachedo counted z >/dev/null &&
	expect_count z 1 &&
	cachedo --stats >out &&
	expect_eq 1 "$(stat_row hits out)" hits
'

test_expect_success '--zero-stats takes no command' '
	expect_status 125 cachedo --zero-stats true 2>err &&
	expect_grep "take no command" err
'

test_expect_success '--list: newest first, one row per entry, sizes and ages' '
	cachedo --clear &&
	cachedo counted first >/dev/null &&
	sleep 0.01 &&
	cachedo counted second >/dev/null &&
	sleep 0.01 &&
	cachedo counted third >/dev/null &&
	expect_status 0 cachedo --list >out &&
	expect_lines 4 out &&
	head -n 1 out >header &&
	expect_grep "^KEY  *AGE  *STATE  *EXIT  *SIZE  *SCOPE  *COMMAND\$" header &&
	if test_have_prereq NEWEST_FIRST; then
		sed -n 2p out | grep "counted third\$" &&
		sed -n 3p out | grep "counted second\$" &&
		sed -n 4p out | grep "counted first\$"
	else
		sed 1d out | sed "s/.*counted //" | sort >got &&
		printf "first\nsecond\nthird\n" >want &&
		expect_cmp want got
	fi &&
	sed -n 3p out | grep -E " [0-9]+ B  " &&
	expect_no_grep "$(printf "\033")" out
'

test_expect_success '--list --json parses and has the rows of the table' '
	expect_status 0 cachedo --list >out &&
	expect_status 0 cachedo --list --json >out.json &&
	python3 -m json.tool out.json >/dev/null &&
	expect_eq 3 "$(json out.json "len(d)")" rows &&
	if test_have_prereq NEWEST_FIRST; then
		expect_eq "counted third" "$(json out.json "d[0][\"command\"]")" newest
	fi &&
	expect_eq True "$(json out.json "d[0][\"fresh\"]")" fresh &&
	key=$(json out.json "d[1][\"key\"]") &&
	sed -n 3p out | grep "^$(echo "$key" | cut -c1-12) " &&
	expect_eq 64 "$(printf %s "$key" | wc -c | tr -d " ")" "key length"
'

test_expect_success LOCAL_STORE '--list shows an expired entry as expired' '
	cachedo --ttl 1ms counted brief >/dev/null &&
	sleep 0.01 &&
	cachedo --list >out &&
	expect_grep "  expired  .*counted brief\$" out &&
	cachedo --list --json >out.json &&
	expect_eq "[False]" \
		"$(json out.json "[r[\"fresh\"] for r in d if r[\"command\"] == \"counted brief\"]")" fresh &&
	cachedo --forget counted brief
'

test_expect_success '--list tells fresh, stale and expired apart, as a run would' '
	row="[r for r in d if r[\"command\"] == \"counted states\"][0]" &&
	states="$row[\"state\"]" &&
	cachedo --ttl 100ms --stale 1h counted states >/dev/null &&
	sleep 0.3 &&
	cachedo --ttl 100ms --stale 1h --list >out &&
	expect_grep "  stale [0-9]*m.*counted states\$" out &&
	cachedo --ttl 100ms --stale 1h --list --json >out.json &&
	expect_eq stale "$(json out.json "$states")" state &&
	expect_eq False "$(json out.json "$row[\"fresh\"]")" fresh &&
	test "$(json out.json "$row[\"stale_until_ms\"] - $row[\"fresh_until_ms\"]")" -gt 3000000 &&
	cachedo --ttl 100ms --list >out &&
	expect_grep "  expired  .*counted states\$" out &&
	cachedo --ttl 100ms --list --json >out.json &&
	expect_eq expired "$(json out.json "$states")" state &&
	cachedo --ttl 1h --list >out &&
	expect_grep "  fresh [0-9]*m.*counted states\$" out &&
	cachedo --ttl 1h --list --json >out.json &&
	expect_eq fresh "$(json out.json "$states")" state &&
	expect_eq True "$(json out.json "$row[\"fresh\"]")" fresh &&
	cachedo -v --ttl 100ms --stale 1h counted states >/dev/null 2>err &&
	expect_grep "^cachedo: stale" err
'

test_expect_success '--list never calls an entry fresh past its writer'"'"'s expiry' '
	cachedo --ttl 100ms --stale 200ms counted gone >/dev/null &&
	sleep 0.4 &&
	cachedo --ttl 1h --list --json >out.json &&
	expect_eq expired "$(json out.json "next((r[\"state\"] for r in d if r[\"command\"] == \"counted gone\"), \"expired\")")" state &&
	cachedo --ttl 1h --list >out &&
	expect_no_grep "fresh.*counted gone" out
'

test_expect_success '--list fits the command column to $COLUMNS' '
	cachedo counted a-long-command-line-that-does-not-fit-in-a-narrow-terminal >/dev/null &&
	COLUMNS=80 cachedo --list >out &&
	awk "length > 80 { bad = 1 } END { exit bad }" out &&
	expect_grep "counted a-long-com.*\\.\\.\\.\$" out &&
	COLUMNS=1000 cachedo --list >wide &&
	expect_grep "narrow-terminal\$" wide
'

test_expect_success '--list shows control characters in a command as ?' '
	cachedo counted "$(printf "line1\nline2")" >/dev/null &&
	cachedo --list >out &&
	expect_grep "line1?line2" out
'

test_expect_success 'colour on a terminal only, and never with NO_COLOR' '
	script -qec "cachedo --list" /dev/null >tty.out </dev/null &&
	expect_grep "$(printf "\033")\\[" tty.out &&
	NO_COLOR=1 script -qec "cachedo --list" /dev/null >tty.out </dev/null &&
	expect_no_grep "$(printf "\033")\\[" tty.out &&
	NO_COLOR=1 script -qec "cachedo --stats" /dev/null >tty.out </dev/null &&
	expect_no_grep "$(printf "\033")\\[" tty.out
'

test_expect_success LOCAL_USAGE '--gc --max-size evicts the least recently used entries' '
	cachedo --clear &&
	cachedo counted old sh -c "head -c 3000 /dev/zero" >/dev/null &&
	sleep 0.01 &&
	cachedo counted mid sh -c "head -c 3000 /dev/zero" >/dev/null &&
	sleep 0.01 &&
	cachedo counted new sh -c "head -c 3000 /dev/zero" >/dev/null &&
	sleep 0.01 &&
	cachedo counted old sh -c "head -c 3000 /dev/zero" >/dev/null &&
	expect_count old 1 &&
	expect_status 0 cachedo --gc --max-size 7K >out &&
	expect_lines 1 out &&
	expect_grep -x "removed 0 expired entries; evicted 1 least recently used entry (.*) to stay under 7.0 KiB" out &&
	cachedo --list >list &&
	expect_lines 3 list &&
	expect_grep "counted old" list &&
	expect_grep "counted new" list &&
	expect_no_grep "counted mid" list &&
	cachedo counted mid sh -c "head -c 3000 /dev/zero" >/dev/null &&
	expect_count mid 2
'

test_expect_success LOCAL_USAGE '--gc without --max-size evicts nothing' '
	expect_status 0 cachedo --gc >out &&
	expect_lines 1 out &&
	expect_grep -x "removed [0-9]* expired entr[a-z]*; evicted none (no --max-size)" out &&
	cachedo --list >list &&
	expect_lines 4 list
'

test_expect_success LOCAL_USAGE 'max-size from the config file applies to --gc' '
	write_config <<-EOF &&
	max-size = 4K
	EOF
	expect_status 0 cachedo --gc >out &&
	rm "$XDG_CONFIG_HOME/cachedo/config" &&
	expect_grep "evicted 2 " out &&
	cachedo --list >list &&
	expect_lines 2 list
'

# upkeep_stamp: the file whose age says when the last upkeep started.
upkeep_stamp () {
	find "$TMP" -name '*-upkeep' -type f | head -n 1
}

# not_listed WORD: no entry of `counted WORD` is listed.
not_listed () {
	cachedo --list >list && ! grep -q "counted $1\$" list
}

# list_lines N: --list prints N lines.
list_lines () {
	cachedo --list >list 2>/dev/null && test "$(wc -l <list)" -eq "$1"
}

test_expect_success LOCAL_USAGE 'the hourly upkeep runs after a miss, not on a hit' '
	cachedo --clear &&
	cachedo --ttl 1ms counted gone >/dev/null &&
	cachedo counted kept >/dev/null &&
	stamp=$(upkeep_stamp) &&
	test -n "$stamp" &&
	touch -d "2 hours ago" "$stamp" &&
	cachedo counted kept >/dev/null &&
	expect_count kept 1 &&
	test -z "$(find "$stamp" -newermt "1 hour ago")" &&
	cachedo --list >list &&
	expect_grep "counted gone" list &&
	cachedo counted trigger >/dev/null &&
	test -n "$(find "$stamp" -newermt "1 hour ago")" &&
	wait_until not_listed gone &&
	expect_grep "counted kept" list
'

test_expect_success LOCAL_USAGE 'a miss leaves the upkeep to a process of its own' '
	cachedo --ttl 1ms counted expired >/dev/null &&
	touch -d "2 hours ago" "$(upkeep_stamp)" &&
	rm -f held release &&
	(flock "$(usage_file)" sh -c "touch held; i=0
		while ! test -e release && test \$i -lt 400; do
			sleep 0.05; i=\$((i + 1)); done") &
	holder=$! &&
	wait_for held &&
	cachedo counted trigger2 >/dev/null &&
	expect_count trigger2 1 &&
	test -n "$(find "$(upkeep_stamp)" -newermt "1 hour ago")" &&
	cachedo --list >list &&
	expect_grep "counted expired" list &&
	touch release &&
	wait $holder &&
	wait_until not_listed expired
'

# open_at_fork TRACE PATH: whether TRACE (strace of one process: open or
# openat, close, clone or fork) forked (fork(3): clone with no child stack
# on glibc, the fork system call on musl) while a file
# under PATH it had opened was still open; fails when it never forked.
open_at_fork () {
	awk -v path="$2" '
		/^open(at)?\(/ && index($0, "\"" path) && / = [0-9]+$/ { open[$NF] = 1 }
		/^close\(/ { fd = $0; sub(/^close\(/, "", fd); sub(/\).*/, "", fd); delete open[fd] }
		/^clone\(child_stack=NULL/ || /^fork\(/ { forked = 1; for (fd in open) left = 1; exit }
		END { exit !(forked && left) }' "$1"
}

# The upkeep's child is forked once the miss closed the cache: its closing
# then writes no page the two processes share (each such write copies the
# page), and no open connection to the cache crosses the fork. (The leak
# check of a sanitizer build cannot run under ptrace.)
test_expect_success TRACED_USAGE 'a miss forks its upkeep only once it closed the cache' '
	touch -d "2 hours ago" "$(upkeep_stamp)" &&
	rm -f fork.* &&
	ASAN_OPTIONS=detect_leaks=0 strace -f -ff -o fork \
		-e trace=open,openat,close,clone,clone3,fork cachedo counted forked >/dev/null &&
	parent=$(ls fork.* | sort -t. -k2 -n | head -n 1) &&
	grep -q -e "^clone(child_stack=NULL" -e "^fork(" "$parent" &&
	! open_at_fork "$parent" "$STORE_PATH"
'

# usage_waiter INODE: the pid of a process waiting for the flock of the
# file INODE (a blocked request in /proc/locks).
usage_waiter () {
	grep -e "-> .*:$1 " /proc/locks | awk '{ print $6; exit }' | grep .
}

# The detached upkeep is held at its start (waiting for the usage lock),
# and its scheduling policy and I/O class read while it waits: idle where
# its work takes no lock that a user's run waits for (dir, mem), else
# niced only (SQLite: its write lock).
test_expect_success LOCAL_USAGE 'the upkeep runs at idle priority unless it takes a lock runs wait for' '
	touch -d "2 hours ago" "$(upkeep_stamp)" &&
	usage=$(usage_file) &&
	ino=$(stat -c %i "$usage") &&
	rm -f held release &&
	{ (flock "$usage" sh -c "touch held; i=0
		while ! test -e release && test \$i -lt 400; do
			sleep 0.05; i=\$((i + 1)); done") & } &&
	holder=$! &&
	wait_for held &&
	cachedo counted trigger3 >/dev/null &&
	wait_until usage_waiter "$ino" >/dev/null &&
	pid=$(usage_waiter "$ino") &&
	{ chrt -p "$pid" >policy; ionice -p "$pid" >io; touch release; } &&
	wait $holder &&
	case $test_backend in
	dir | mem)
		expect_grep "policy: SCHED_IDLE" policy &&
		expect_grep -x idle io
		;;
	*)
		expect_grep "policy: SCHED_OTHER" policy &&
		! grep -q idle io
		;;
	esac
'

# A miss of a command that waits for the file go is at work (it holds its
# single-flight lock) until the test lets it end: the upkeep another miss
# started meanwhile waits for it, and only then removes the expired entry.
test_expect_success LOCAL_USAGE 'the upkeep waits while a run is at work' '
	cachedo --ttl 1ms counted expired2 >/dev/null &&
	rm -f go &&
	{ cachedo counted slow sh -c "i=0; while ! test -e go && test \$i -lt 400; do
		sleep 0.05; i=\$((i + 1)); done" >/dev/null & } &&
	slow=$! &&
	wait_for "$TMP/count.slow" &&
	touch -d "2 hours ago" "$(upkeep_stamp)" &&
	cachedo counted trigger5 >/dev/null &&
	sleep 1 &&
	cachedo --list >list &&
	{ grep -q "counted expired2" list || touch go; } &&
	expect_grep "counted expired2" list &&
	touch go &&
	wait $slow &&
	wait_until not_listed expired2
'

test_expect_success LOCAL_USAGE 'the upkeep evicts down to max-size' '
	touch -d "2 hours ago" "$(upkeep_stamp)" &&
	CACHEDO_MAX_SIZE=1 cachedo counted evictor >/dev/null &&
	wait_until list_lines 0 &&
	cachedo --list 2>err &&
	expect_grep -x "cachedo: no entries" err
'

test_expect_success LOCAL_USAGE 'a hit appends one usage record and writes nothing else' '
	cachedo counted quiet-hit >/dev/null &&
	usage=$(usage_file) &&
	test -f "$usage" &&
	before=$(wc -c <"$usage") &&
	if test "$test_backend" = sqlite; then
		# the WAL tidy the miss may have left to a child of its own
		flock "$STORE_PATH-tidy" true &&
		cksum "$STORE_PATH" "$STORE_PATH-wal" >db.before
	fi &&
	cachedo counted quiet-hit >/dev/null &&
	cachedo counted quiet-hit >/dev/null &&
	expect_count quiet-hit 1 &&
	after=$(wc -c <"$usage") &&
	expect_eq $((before + 64)) "$after" "usage file size" &&
	if test "$test_backend" = sqlite; then
		cksum "$STORE_PATH" "$STORE_PATH-wal" >db.after &&
		expect_cmp db.before db.after
	fi
'

test_expect_success LOCAL_USAGE 'a damaged usage file is skipped, not fatal' '
	usage=$(usage_file) &&
	printf "garbage that is not a record at all, 41 b" >>"$usage" &&
	cachedo counted quiet-hit >/dev/null &&
	expect_status 0 cachedo --stats >out &&
	test "$(stat_row hits out)" -ge 3
'

test_expect_success '-v says why a miss missed: the differing variable' '
	cachedo --clear &&
	FOO=valueAAA cachedo -v counted why 2>err1 >/dev/null &&
	expect_grep "^cachedo: miss.*no entry of this command was stored before" err1 &&
	FOO=valueBBB cachedo -v counted why 2>err2 >/dev/null &&
	expect_grep "^cachedo: miss.*stored .* ago; 1 component differs" err2 &&
	expect_grep "env FOO: another value" err2 &&
	expect_no_grep -e valueAAA -e valueBBB err2 &&
	cachedo -v counted why 2>err3 >/dev/null &&
	expect_grep "env FOO: unset or not hashed now, set then" err3 &&
	FOO=valueBBB cachedo -v counted why 2>err4 >/dev/null &&
	expect_grep "hit" err4 &&
	expect_no_grep "miss" err4 &&
	expect_count why 3
'

test_expect_success '-v says why a miss missed: cwd, file, expiry' '
	mkdir -p d1 d2 &&
	(cd d1 && cachedo -v counted where >/dev/null 2>&1) &&
	(cd d2 && cachedo -v counted where 2>../err >/dev/null) &&
	expect_grep "^cachedo: miss.*cwd another working directory" err &&
	echo 1 >input &&
	cachedo --file input counted filed >/dev/null &&
	echo 2 >input &&
	cachedo -v --file input counted filed 2>err >/dev/null &&
	expect_grep "^cachedo: miss.*file input: other contents" err &&
	rm input &&
	cachedo -v --file input counted filed 2>err >/dev/null &&
	expect_grep "^cachedo: miss.*file input: absent now" err &&
	echo 3 >input &&
	cachedo -v --file input counted filed 2>err >/dev/null &&
	expect_grep "^cachedo: miss.*file input: present now, absent then" err &&
	mkdir tree && : >tree/a &&
	cachedo --file tree counted treed >/dev/null &&
	: >tree/b &&
	cachedo -v --file tree counted treed 2>err >/dev/null &&
	expect_grep "^cachedo: miss.*file tree: another tree (names, types, sizes or modification times)" err &&
	cachedo --ttl 1ms counted brief >/dev/null &&
	sleep 0.01 &&
	cachedo -v --ttl 1ms counted brief 2>err >/dev/null &&
	expect_grep "with the same inputs (expired or removed since)" err
'

test_expect_success '--explain -v names what differs from the nearest entry' '
	FOO=one cachedo counted explained >/dev/null &&
	FOO=two cachedo -v --explain counted explained >out &&
	expect_grep "^nearest  stored .* ago; 1 component differs" out &&
	expect_grep "^differs  env: FOO: another value" out &&
	cachedo --explain counted explained >plain &&
	expect_no_grep "^nearest" plain &&
	expect_count explained 1
'

# side_files: the files under the test dir that are not entries (of the
# dir backend, or the exec backend's files helper), not the test's own
# (counters, outputs) and not Redis's.
side_files () {
	find "$TMP" -type f ! -path "$TMP/redis*" ! -name "count.*" \
		! -path "$XDG_CACHE_HOME/cachedo-files/*" \
		! -name "*.out" ! -name "*.err" ! -name "side.*" |
		grep -v "/v1/[0-9a-f][0-9a-f]/[0-9a-f]\{64\}\$" | sort
}

test_expect_success 'distinct commands leave no file of their own (locks, explain data)' '
	for i in 1 2 3; do cachedo -v true "warm $i" 2>side.err >side.out || return 1; done &&
	side_files >side.before &&
	for i in 1 2 3 4 5 6 7 8 9 10; do
		cachedo -v true "distinct $i" 2>side.err >side.out || return 1
	done &&
	FOO=x cachedo -v true "distinct 1" 2>side.err >side.out &&
	expect_grep "env FOO" side.err &&
	side_files >side.after &&
	expect_cmp side.before side.after
'

test_expect_success LOCAL_STORE 'the miss explanations hold no variable value' '
	secret=s3cr3t-$$-value &&
	SECRET_TOKEN=$secret cachedo counted hush >/dev/null &&
	grep -r -l -a -F "$secret" "$TMP" --exclude=out >leaks || : &&
	expect_lines 0 leaks
'

test_expect_success LOCAL_USAGE '--gc --max-size evicts by age even after --list and --stats read every entry' '
	cachedo --clear &&
	for n in 1 2 3 4 5 6; do
		cachedo counted "e$n" sh -c "head -c 3000 /dev/zero" >/dev/null &&
		sleep 0.01 || return 1
	done &&
	cachedo --list >/dev/null &&
	cachedo --stats >/dev/null &&
	expect_status 0 cachedo --gc --max-size 10K >out &&
	expect_grep "evicted 3 least recently used entries" out &&
	cachedo --list >list &&
	expect_lines 4 list &&
	expect_no_grep "counted e[123] " list &&
	expect_grep "counted e4 " list &&
	expect_grep "counted e5 " list &&
	expect_grep "counted e6 " list
'

test_expect_success '--stats counts the bytes --list shows, scoped entries too' '
	cachedo --clear &&
	cachedo counted plain sh -c "head -c 1234 /dev/zero" >/dev/null &&
	cachedo --scope a-longer-scope-name counted scoped sh -c "head -c 999 /dev/zero" >/dev/null &&
	expect_status 0 cachedo --stats --json >st.json &&
	expect_status 0 cachedo --list --json >ls.json &&
	expect_eq 2 "$(json st.json "d[\"entries\"]")" entries &&
	expect_eq "$(json ls.json "sum(r[\"size\"] for r in d)")" \
		"$(json st.json "d[\"bytes\"]")" bytes
'

# vmem_floor [ARG]...: the smallest ulimit -v (KiB, in 1 MiB steps) under
# which cachedo ARG... (--list by default) succeeds on the cache as it is.
vmem_floor () {
	test $# -gt 0 || set -- --list
	test_v=4096
	until (ulimit -v $test_v && exec "$CACHEDO" "$@") >/dev/null 2>&1; do
		test_v=$((test_v + 1024))
		test $test_v -le 1048576 || return 1
	done
	echo $test_v
}

# 50,000 rows of about 350 bytes: held in memory at once, as a sort would
# hold them, they would take over 16 MiB more than listing a few dozen;
# streaming takes the same (sqlite: plus its page cache, 16 MiB at most).
test_expect_success FILL '--list streams: 50,000 more entries listed whole in the same memory' '
	cachedo --list >before &&
	floor=$(vmem_floor) &&
	case $CACHEDO_CACHE in
	sqlite:*) limit=$((floor + 16384 + 6144)) ;;
	*) limit=$((floor + 6144)) ;;
	esac &&
	"$test_fill" "$CACHEDO_CACHE" 50000 >/dev/null &&
	(ulimit -v $limit && exec "$CACHEDO" --list) >after 2>err &&
	expect_lines 0 err &&
	expect_eq $(($(wc -l <before) + 50000)) "$(wc -l <after)" "lines" &&
	expect_eq 50000 $(($(grep -o " echo fill-[0-9]* " after | sort -u | wc -l))) \
		"distinct filled rows"
'

# Eviction deletes through SQLite's page cache (32 MiB at most) and keeps
# nothing per entry: not a copy of every page it changes (a statement
# journal took about twice the size of the entries it deleted).
test_expect_success SQLITE_FILL '--gc --max-size evicting half of 50,000 entries takes no memory per entry' '
	floor=$(vmem_floor --gc --max-size 1T) &&
	cachedo --stats --json >st.json &&
	bytes=$(json st.json "d[\"bytes\"]") &&
	test "$bytes" -gt 20000000 &&
	(ulimit -v $((floor + 32768 + 8192)) &&
		exec "$CACHEDO" --gc --max-size $((bytes / 2))) >out 2>err &&
	expect_lines 0 err &&
	expect_grep "evicted [0-9]* least recently used entries" out &&
	cachedo --stats --json >st.json &&
	test "$(json st.json "d[\"bytes\"]")" -le $((bytes / 2))
'

# Misses wait for an eviction's write transactions, never fail on them;
# the newest entries (theirs) are not the ones evicted.
test_expect_success FILL 'misses while --gc --max-size evicts: each stored, none warned' '
	"$test_fill" "$CACHEDO_CACHE" 30000 100000 >/dev/null &&
	cachedo --stats --json >st.json &&
	bytes=$(json st.json "d[\"bytes\"]") &&
	: >"$TMP/evicting"
	{
		for f in 9 8 7 6 5 4 3 2; do
			cachedo --gc --max-size $((bytes * f / 10)) >>evict.out 2>>evict.err ||
				echo "status $?" >>evict.err
		done
		rm "$TMP/evicting"
	} &
	i=0 failed= &&
	while [ -e "$TMP/evicting" ]; do
		i=$((i + 1)) &&
		cachedo counted "during$i" >out 2>err &&
		expect_eq "during$i run 1" "$(cat out)" "output of miss $i" &&
		expect_lines 0 err || { failed=$i; break; }
	done &&
	wait &&
	test -z "$failed" &&
	expect_eq yes "$(test $i -gt 0 && echo yes)" "misses during the evictions" &&
	expect_lines 0 evict.err &&
	expect_lines 8 evict.out &&
	expect_grep "evicted [1-9][0-9]* least" evict.out &&
	j=0 &&
	while [ $j -lt $i ]; do
		j=$((j + 1)) &&
		cachedo counted "during$j" >/dev/null &&
		expect_count "during$j" 1 || return 1
	done
'

test_done
