#!/bin/sh
# A sick Redis never breaks the command: stopped, frozen, wrong password, out
# of memory. Each case checks the command's own output and exit status, one
# warning, and the circuit breaker that spares later runs the wait. Runs with
# CACHEDO_TEST_CACHE=redis; starts its own servers.
. "$(dirname "$0")/lib.sh"

test "$test_backend" = redis || skip_all "redis only (CACHEDO_TEST_CACHE=redis)"

# The command of every case: output on both streams, status 3.
job='echo out; echo err >&2; exit 3'


test_expect_success 'setup: a server to stop, one to freeze, one with a password' '
	redis_start "$TMP/stopped" && echo "$REDIS_PORT $REDIS_SOCK" >"$TMP/stopped.addr" &&
	redis_stop "$TMP/stopped" &&
	redis_start "$TMP/frozen" && echo "$REDIS_PID $REDIS_PORT" >"$TMP/frozen.addr" &&
	redis_start "$TMP/auth" --requirepass right-pw \
		--user alice on ">alice-pw" "~*" "&*" "+@all" &&
	echo "$REDIS_PORT" >"$TMP/auth.addr"
'
read -r stopped_port stopped_sock <"$TMP/stopped.addr" 2>/dev/null
read -r frozen_pid frozen_port <"$TMP/frozen.addr" 2>/dev/null
read -r auth_port <"$TMP/auth.addr" 2>/dev/null

test_expect_success 'stopped server (TCP, connection refused): the command runs, one warning' '
	expect_fallback refused -c redis://127.0.0.1:$stopped_port &&
	expect_grep "cannot connect to 127.0.0.1:$stopped_port" err &&
	expect_count refused 1
'

test_expect_success 'stopped server: the next run skips it at once, saying since when' '
	expect_fallback refused -c redis://127.0.0.1:$stopped_port &&
	expect_grep "skipped since [0-9][0-9]:[0-9][0-9]:[0-9][0-9]" err &&
	expect_count refused 2
'

test_expect_success 'stopped server (unix socket gone): the command runs, one warning' '
	expect_fallback refused-unix -c unix://$stopped_sock &&
	expect_fallback refused-unix -c unix://$stopped_sock &&
	expect_count refused-unix 2
'

test_expect_success '-q silences the warning, not the command' '
	expect_status 3 cachedo -q -c redis://127.0.0.1:$stopped_port counted quiet \
		sh -c "$job" >out 2>err &&
	expect_eq out "$(cat out)" &&
	expect_eq err "$(cat err)"
'

test_expect_success 'a password in the URL is never shown' '
	expect_fallback masked -c redis://bob:hunter2-secret@127.0.0.1:$stopped_port/2 &&
	expect_no_grep hunter2 err &&
	expect_grep "bob:\*\*\*@127.0.0.1" err
'

test_expect_success 'after the breaker window the server is tried again' '
	CACHEDO_REDIS_BREAKER=200ms &&
	export CACHEDO_REDIS_BREAKER &&
	expect_fallback retry -c redis://127.0.0.1:$stopped_port &&
	sleep 0.3 &&
	expect_fallback retry -c redis://127.0.0.1:$stopped_port &&
	expect_grep "cannot connect" err
'

test_expect_success 'frozen server (SIGSTOP): one timeout, then the command runs' '
	cachedo -c redis://127.0.0.1:$frozen_port counted warm-frozen >/dev/null &&
	kill -STOP $frozen_pid &&
	expect_fallback frozen -c redis://127.0.0.1:$frozen_port &&
	expect_grep "no answer within 1s" err &&
	expect_count frozen 1
'

test_expect_success 'frozen server: the next run inside the breaker window does not wait' '
	# A wait of the 1 s read timeout would be cut by timeout(1): status 124.
	expect_status 3 timeout 1 cachedo -c redis://127.0.0.1:$frozen_port \
		counted frozen sh -c "$job" >out 2>err &&
	expect_eq out "$(cat out)" &&
	expect_grep "skipped since" err &&
	expect_lines 2 err &&
	expect_count frozen 2
'

test_expect_success 'frozen server: --clear and --stats still try it, with the normal timeout' '
	expect_status 1 timeout 10 cachedo -c redis://127.0.0.1:$frozen_port --clear 2>err &&
	expect_grep "no answer within 1s" err &&
	expect_no_grep "skipped since" err &&
	expect_status 1 timeout 10 cachedo -c redis://127.0.0.1:$frozen_port --stats 2>err &&
	expect_grep "no answer within 1s" err
'

test_expect_success '-v names the failure of a run that went uncached' '
	expect_status 3 cachedo -v -c redis://127.0.0.1:$frozen_port counted frozen \
		sh -c "$job" >out 2>err &&
	expect_grep "^cachedo: uncached: .*skipped since" err &&
	expect_no_grep "cache disabled" err &&
	expect_status 3 cachedo -v -c redis://127.0.0.1:$stopped_port counted refused \
		sh -c "$job" >out 2>err &&
	expect_grep "^cachedo: uncached: .*127.0.0.1:$stopped_port" err &&
	expect_no_grep "cache disabled" err
'

test_expect_success 'frozen with a short --redis-timeout in the config: one short wait' '
	write_config <<-EOF &&
	redis-timeout = 200ms
	redis-breaker = 0
	EOF
	expect_status 3 timeout 1 cachedo -c unix://$TMP/frozen/redis.sock counted short \
		sh -c "$job" >out 2>err &&
	expect_grep "no answer within 200ms" err &&
	expect_status 3 timeout 1 cachedo -c unix://$TMP/frozen/redis.sock counted short \
		sh -c "$job" >out 2>err &&
	expect_grep "no answer within 200ms" err &&
	expect_count short 2 &&
	rm "$XDG_CONFIG_HOME/cachedo/config"
'

test_expect_success 'a thawed server serves the entry stored before the freeze' '
	kill -CONT $frozen_pid &&
	rm -rf "$XDG_RUNTIME_DIR/cachedo" &&
	cachedo -c redis://127.0.0.1:$frozen_port counted warm-frozen >out 2>err &&
	expect_eq "warm-frozen run 1" "$(cat out)" &&
	expect_lines 0 err &&
	expect_count warm-frozen 1
'

test_expect_success 'a server back inside the breaker window: admin commands use it and close the breaker' '
	redis_start "$TMP/flaky" &&
	url=redis://127.0.0.1:$REDIS_PORT &&
	cachedo -c $url counted flaky >/dev/null &&
	kill -STOP $REDIS_PID &&
	expect_fallback flaky -c $url &&
	expect_fallback flaky -c $url &&
	expect_grep "skipped since" err &&
	kill -CONT $REDIS_PID &&
	for mode in --stats --list --gc --clear; do
		expect_status 0 timeout 10 cachedo -c $url $mode >out 2>err &&
		expect_no_grep "skipped" err || exit 1
	done &&
	expect_status 0 cachedo -c $url --forget counted flaky &&
	cachedo -v -c $url counted flaky >out 2>err &&
	expect_grep "miss, stored" err &&
	expect_count flaky 4 &&
	cachedo -c $url counted flaky >out &&
	expect_count flaky 4 &&
	redis_stop
'

test_expect_success '--forget tries a server inside the breaker window' '
	redis_start "$TMP/flaky2" &&
	url=redis://127.0.0.1:$REDIS_PORT &&
	kill -STOP $REDIS_PID &&
	expect_fallback flaky2 -c $url &&
	kill -CONT $REDIS_PID &&
	expect_status 0 timeout 10 cachedo -c $url --forget counted flaky2 2>err &&
	expect_lines 0 err &&
	cachedo -c $url counted flaky2 >/dev/null 2>err &&
	expect_lines 0 err &&
	redis_stop
'

test_expect_success 'wrong password: the command runs, the server says why, no password shown' '
	expect_fallback wrongpw -c redis://:wrong-pw@127.0.0.1:$auth_port &&
	expect_grep "authentication refused: WRONGPASS" err &&
	expect_no_grep wrong-pw err &&
	expect_fallback wrongpw -c redis://:wrong-pw@127.0.0.1:$auth_port &&
	expect_count wrongpw 2
'

test_expect_success 'no password for a server that wants one: the command runs' '
	expect_fallback nopw -c redis://127.0.0.1:$auth_port &&
	expect_grep NOAUTH err
'

test_expect_success 'CACHEDO_REDIS_PASSWORD wins over the URL and is never shown' '
	CACHEDO_REDIS_PASSWORD=right-pw cachedo -c redis://:wrong-pw@127.0.0.1:$auth_port \
		counted envpw >out1 2>err1 &&
	CACHEDO_REDIS_PASSWORD=right-pw cachedo -c redis://127.0.0.1:$auth_port \
		counted envpw >out2 2>err2 &&
	expect_count envpw 1 &&
	expect_cmp out1 out2 &&
	expect_lines 0 err1 &&
	expect_status 3 env CACHEDO_REDIS_PASSWORD=nope-pw cachedo \
		-c redis://127.0.0.1:$auth_port counted envpw2 sh -c "$job" >out 2>err &&
	expect_no_grep nope-pw err
'

test_expect_success 'URL options: password= wins over the URL user info and is never shown' '
	cachedo -c "redis://:wrong-pw@127.0.0.1:$auth_port?password=right-pw" \
		counted optpw >out1 2>err1 &&
	cachedo -c "redis://127.0.0.1:$auth_port?password=right%2Dpw" \
		counted optpw >out2 2>err2 &&
	expect_count optpw 1 &&
	expect_lines 0 err1 &&
	expect_lines 0 err2 &&
	expect_status 3 cachedo -c "redis://127.0.0.1:$auth_port?password=nope-pw" \
		counted optpw2 sh -c "$job" >out 2>err &&
	expect_grep "password=\*\*\*" err &&
	expect_no_grep nope-pw err &&
	mkdir -p "$XDG_CONFIG_HOME/cachedo" &&
	echo "redis-password = right-pw" >"$XDG_CONFIG_HOME/cachedo/config" &&
	cachedo -c "redis://127.0.0.1:$auth_port" counted optpw >out3 2>err3 &&
	rm "$XDG_CONFIG_HOME/cachedo/config" &&
	expect_count optpw 1 &&
	expect_lines 0 err3
'

test_expect_success 'URL options: one in the URL wins over the setting mapped onto it' '
	CACHEDO_REDIS_BREAKER=1h cachedo -c "redis://127.0.0.1:$stopped_port/7?breaker=0" \
		counted optbrk >out 2>err &&
	expect_grep "cannot connect" err &&
	CACHEDO_REDIS_BREAKER=1h cachedo -c "redis://127.0.0.1:$stopped_port/7?breaker=0" \
		counted optbrk >out 2>err &&
	expect_grep "cannot connect" err &&
	expect_no_grep "skipped since" err &&
	expect_count optbrk 2
'

test_expect_success 'URL options: a bad or unknown one is refused, naming it' '
	expect_status 125 cachedo -c "redis://127.0.0.1:$auth_port?timeout=soon" true 2>err &&
	expect_grep "bad option .timeout=soon.: expected a duration" err &&
	expect_status 125 cachedo -c "redis://127.0.0.1:$auth_port?colour=red" true 2>err &&
	expect_grep "unknown option .colour. (the redis backend takes .*timeout" err &&
	expect_status 125 cachedo -c "redis://127.0.0.1:$auth_port?password=" true 2>err &&
	expect_grep "bad option .password." err
'

test_expect_success 'an ACL user and password (AUTH user pass) and a database number' '
	cachedo -c redis://alice:alice-pw@127.0.0.1:$auth_port/3 counted acl >out1 &&
	cachedo -c redis://alice:alice-pw@127.0.0.1:$auth_port/3 counted acl >out2 &&
	expect_count acl 1 &&
	expect_cmp out1 out2 &&
	test "$(redis-cli -p $auth_port --user alice --pass alice-pw -n 3 --no-auth-warning dbsize)" -ge 1
'

# fill N: 40000 bytes of x, then " N", exit 5.
cat >"$TMP/bin/fill" <<'EOF'
#!/bin/sh
head -c 40000 /dev/zero | tr '\0' x
echo " $1"
exit 5
EOF
chmod 755 "$TMP/bin/fill"

test_expect_success 'maxmemory 1mb, allkeys-lru: a stream of writes keeps every output right' '
	redis_start "$TMP/small" --maxmemory 1mb --maxmemory-policy allkeys-lru &&
	for round in 1 2; do
		i=0 &&
		while [ $i -lt 60 ]; do
			i=$((i + 1)) &&
			expect_status 5 cachedo -c "$REDIS_URL" counted mm$i fill $i >out 2>err &&
			expect_eq $((40002 + ${#i})) $(($(wc -c <out))) "bytes" &&
			expect_eq "x $i" "$(tail -c 20 out | sed "s/^x*/x/")" &&
			expect_no_grep -v "^cachedo: warning: cannot store" err || exit 1
		done
	done &&
	evicted=$(redis_cli info stats | sed -n "s/^evicted_keys:\([0-9]*\).*/\1/p") &&
	test "$evicted" -gt 0 &&
	redis_stop
'

test_expect_success 'a key of another application survives --clear; cachedo keys go' '
	redis_start "$TMP/planted" &&
	redis_cli set myapp:config keep >/dev/null &&
	redis_cli set cachedo:other keep2 >/dev/null &&
	cachedo -c "$REDIS_URL" counted planted >/dev/null &&
	cachedo -c "$REDIS_URL" --scope s counted planted >/dev/null &&
	expect_count planted 2 &&
	expect_status 0 cachedo -c "$REDIS_URL" --clear &&
	expect_eq keep "$(redis_cli get myapp:config)" &&
	expect_eq keep2 "$(redis_cli get cachedo:other)" &&
	cachedo -c "$REDIS_URL" counted planted >/dev/null &&
	cachedo -c "$REDIS_URL" --scope s counted planted >/dev/null &&
	expect_count planted 4 &&
	redis_stop
'

test_done
