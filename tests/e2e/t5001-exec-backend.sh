#!/bin/sh
# The exec: backend and its faults: a helper that is missing, not
# executable, crashing, hanging, printing garbage or refusing a verb never
# breaks the command, which keeps its own output and exit status. Runs with
# CACHEDO_TEST_CACHE=exec.
. "$(dirname "$0")/lib.sh"

test "$test_backend" = exec || skip_all "exec only (CACHEDO_TEST_CACHE=exec)"

files=$ROOT/examples/cachedo-files
unset CACHEDO_CACHE

# The command of every case: output on both streams, status 3.
job='echo out; echo err >&2; exit 3'

# helper NAME <<EOF: a helper script $TMP/bin/NAME from stdin; its verbs are
# logged one per line to $TMP/NAME.log.
helper () {
	{
		echo '#!/bin/sh'
		echo "echo \"\$1\" >>\"$TMP/$1.log\""
		cat
	} >"$TMP/bin/$1" &&
	chmod 755 "$TMP/bin/$1"
}


test_expect_success 'the files helper: miss, then hit, with arguments in the URL' '
	mkdir "$TMP/with space" &&
	url="exec:\"$files\" '\''$TMP/with space/store'\''" &&
	expect_status 3 cachedo -v -c "$url" counted files sh -c "$job" >out 2>err &&
	expect_grep "miss, stored" err &&
	expect_status 3 cachedo -v -c "$url" counted files sh -c "$job" >out 2>err &&
	expect_grep "^cachedo: hit" err &&
	expect_eq out "$(cat out)" &&
	expect_grep -x err err &&
	expect_count files 1 &&
	test -n "$(find "$TMP/with space/store" -type f -name "[0-9a-f]*[0-9a-f]")"
'

test_expect_success 'the files helper: --list, --stats, --forget, --clear' '
	url="exec:$files $TMP/admin" &&
	cachedo -c "$url" counted admin1 >/dev/null &&
	cachedo -c "$url" counted admin2 >/dev/null &&
	cachedo -c "$url" --list >list &&
	expect_lines 3 list &&
	expect_grep "counted admin1\$" list &&
	cachedo -c "$url" --stats --json >stats &&
	expect_grep "\"entries\":2" stats &&
	cachedo -c "$url" --forget counted admin1 &&
	expect_lines 2 "$(cachedo -c "$url" --list >list; echo list)" &&
	expect_status 0 cachedo -c "$url" --clear &&
	cachedo -c "$url" counted admin2 >/dev/null &&
	expect_count admin2 2
'

test_expect_success 'the files helper: --clear with --scope keeps other scopes' '
	url="exec:$files $TMP/scoped" &&
	cachedo -c "$url" --scope a counted sa >/dev/null &&
	cachedo -c "$url" --scope b counted sb >/dev/null &&
	cachedo -c "$url" counted snone >/dev/null &&
	expect_status 0 cachedo -c "$url" --scope a --clear &&
	cachedo -c "$url" --scope a counted sa >/dev/null &&
	cachedo -c "$url" --scope b counted sb >/dev/null &&
	cachedo -c "$url" counted snone >/dev/null &&
	expect_count sa 2 &&
	expect_count sb 1 &&
	expect_count snone 1
'

test_expect_success 'a missing helper: the command runs, one warning' '
	expect_fallback missing -c exec:/nonexistent/helper &&
	expect_grep "/nonexistent/helper" err &&
	expect_fallback missing2 -c exec:no-such-cachedo-helper &&
	expect_grep "not found" err &&
	expect_count missing 1
'

test_expect_success 'a helper that is not executable: the command runs, one warning' '
	printf "#!/bin/sh\nexit 0\n" >"$TMP/noexec" &&
	chmod 644 "$TMP/noexec" &&
	expect_fallback noexec -c "exec:$TMP/noexec" &&
	expect_grep "not an executable" err
'

test_expect_success 'a helper that crashes (SIGSEGV): the command runs, one warning' '
	helper crash <<-\EOF &&
	kill -SEGV $$
	EOF
	expect_fallback crash -c exec:crash &&
	expect_grep "killed by signal $(kill -l SEGV 2>/dev/null || echo 11)\|signal 11" err &&
	expect_fallback crash -c exec:crash &&
	expect_count crash 2
'

test_expect_success 'a helper that hangs is killed (with what it started) after the timeout' '
	helper hang <<-EOF &&
	sleep 60 &
	echo \$! >"$TMP/hang.pid"
	wait
	EOF
	CACHEDO_EXEC_TIMEOUT=300ms &&
	export CACHEDO_EXEC_TIMEOUT &&
	expect_fallback hang -c exec:hang &&
	expect_grep "no progress for 300ms" err &&
	pid=$(cat "$TMP/hang.pid") &&
	i=0 &&
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1)) && test $i -lt 100 && sleep 0.05 || exit 1
	done &&
	expect_lines 1 "$TMP/hang.log"
'

test_expect_success 'the timeout as a URL option, before the program: exec:?timeout=300ms PROG' '
	CACHEDO_EXEC_TIMEOUT=1h &&
	export CACHEDO_EXEC_TIMEOUT &&
	expect_fallback hang -c "exec:?timeout=300ms hang" &&
	expect_grep "no progress for 300ms" err &&
	unset CACHEDO_EXEC_TIMEOUT
'

test_expect_success 'exec:?breaker=DURATION: a helper that hung is skipped by the next runs' '
	expect_fallback hang -c "exec:?timeout=300ms&breaker=1h hang" &&
	expect_grep "no progress for 300ms" err &&
	n=$(wc -l <"$TMP/hang.log") &&
	expect_fallback hang -c "exec:?timeout=300ms&breaker=1h hang" &&
	expect_grep "helper .* skipped since [0-9][0-9]:[0-9][0-9]:[0-9][0-9], when it failed (no progress" err &&
	test "$(wc -l <"$TMP/hang.log")" = "$n" &&
	expect_fallback hang -c "exec:?timeout=300ms hang" &&
	test "$(wc -l <"$TMP/hang.log")" -gt "$n"
'

test_expect_success 'a ? in the program path or its arguments is not an option' '
	mkdir "$TMP/what?" &&
	cp "$files" "$TMP/what?/files" &&
	url="exec:$TMP/what?/files $TMP/q?store" &&
	expect_status 3 cachedo -c "$url" counted qmark sh -c "$job" >out1 2>err1 &&
	expect_status 3 cachedo -c "$url" counted qmark sh -c "$job" >out2 2>err2 &&
	expect_count qmark 1 &&
	expect_cmp err1 err2 &&
	expect_lines 1 err2 &&
	test -d "$TMP/q?store" &&
	expect_status 125 cachedo -c "exec:?colour=red $files $TMP/s" true 2>err &&
	expect_grep "unknown option .colour. (the exec backend takes timeout, breaker)" err
'

test_expect_success 'a helper that hangs while taking the entry is killed too' '
	helper hangput <<-\EOF &&
	case $1 in get) exit 1 ;; put) exec sleep 60 ;; esac
	EOF
	CACHEDO_EXEC_TIMEOUT=300ms &&
	export CACHEDO_EXEC_TIMEOUT &&
	expect_status 3 cachedo -c exec:hangput counted hangput sh -c "$job" >out 2>err &&
	expect_eq out "$(cat out)" &&
	expect_lines 2 err &&
	expect_grep "^cachedo: warning: cannot store .*put: .*; killed it" err
'

test_expect_success 'a helper that prints garbage: a miss, the entry goes, the command runs' '
	helper garbage <<-\EOF &&
	case $1 in
	get) echo "this is not an entry"; exit 0 ;;
	put) cat >/dev/null; exit 0 ;;
	esac
	EOF
	expect_status 3 cachedo -c exec:garbage counted garbage sh -c "$job" >out 2>err &&
	expect_eq out "$(cat out)" &&
	expect_grep -x err err &&
	expect_status 3 cachedo -c exec:garbage counted garbage sh -c "$job" >out 2>err &&
	expect_eq out "$(cat out)" &&
	expect_count garbage 2 &&
	expect_grep -x delete "$TMP/garbage.log"
'

test_expect_success 'a helper that exits 2 for clear: a clear error, status 1' '
	helper noclear <<-\EOF &&
	exit 2
	EOF
	expect_status 1 cachedo -c exec:noclear --clear >out 2>err &&
	expect_lines 1 err &&
	expect_grep "^cachedo: helper .noclear. clear: not supported" err &&
	expect_lines 0 out &&
	expect_status 1 cachedo -c exec:noclear --list 2>err &&
	expect_grep "list: not supported" err
'

test_expect_success 'a helper that exits 2 for get: the command runs, one warning' '
	expect_fallback noclear -c exec:noclear &&
	expect_grep "get: not supported" err
'

test_expect_success 'any other status of get: the command runs, one warning' '
	helper status7 <<-\EOF &&
	exit 7
	EOF
	expect_fallback status7 -c exec:status7 &&
	expect_grep "get: exit status 7" err
'

test_expect_success 'a put that fails: one warning, the command keeps its status' '
	helper badput <<-\EOF &&
	case $1 in get) exit 1 ;; put) exit 5 ;; esac
	EOF
	expect_status 3 cachedo -c exec:badput counted badput sh -c "$job" >out 2>err &&
	expect_eq out "$(cat out)" &&
	expect_lines 2 err &&
	expect_grep "^cachedo: warning: cannot store .*put: exit status 5" err
'

test_expect_success 'a helper that quits without reading the entry does not kill cachedo' '
	helper early <<-\EOF &&
	case $1 in get) exit 1 ;; put) exit 0 ;; esac
	EOF
	gen="head -c 4194304 /dev/zero; exit 3" &&
	expect_status 3 cachedo -c exec:early counted early sh -c "$gen" >out 2>err &&
	expect_eq 4194304 $(wc -c <out) "byte count" &&
	expect_lines 1 err &&
	expect_grep "^cachedo: warning: cannot store .*put: exit status 0, but" err
'

test_expect_success 'the helper inherits no fd of cachedo, and its stderr reaches ours' '
	helper fds <<-EOF &&
	ls /proc/\$\$/fd >"$TMP/fds.\$1"
	echo "helper says \$1" >&2
	case \$1 in get) exit 1 ;; put) cat >/dev/null ;; esac
	EOF
	"$TMP/bin/fds" direct 2>/dev/null &&
	expect_status 3 cachedo -c exec:fds counted fds sh -c "$job" >out 2>err &&
	expect_grep -x "helper says get" err &&
	expect_grep -x "helper says put" err &&
	expect_cmp "$TMP/fds.direct" "$TMP/fds.get" &&
	expect_cmp "$TMP/fds.direct" "$TMP/fds.put"
'

test_expect_success 'put gets the TTL in seconds, rounded up, and the entry size' '
	helper ttl <<-EOF &&
	case \$1 in
	get) exit 1 ;;
	put) echo "\$3 \$CACHEDO_ENTRY_SIZE \$(wc -c)" >"$TMP/ttl.out" ;;
	esac
	EOF
	cachedo -c exec:ttl --ttl 1500ms --stale 2s counted ttl >/dev/null &&
	read -r ttl size got <"$TMP/ttl.out" &&
	expect_eq 4 "$ttl" "TTL" &&
	expect_eq "$got" "$size" "size"
'

test_expect_success 'bad exec: URLs and timeouts are usage errors' '
	expect_status 125 cachedo -c "exec:" true 2>err &&
	expect_grep "no program" err &&
	expect_status 125 cachedo -c "exec:\"$files" true 2>err &&
	expect_grep "unterminated double quote" err &&
	expect_status 125 cachedo -c "exec:$files '\''x" true 2>err &&
	expect_grep "unterminated single quote" err &&
	CACHEDO_EXEC_TIMEOUT=soon &&
	export CACHEDO_EXEC_TIMEOUT &&
	expect_status 125 cachedo -c "exec:$files" true 2>err &&
	expect_grep "CACHEDO_EXEC_TIMEOUT" err
'

test_done
