#!/bin/sh
# A --refresh that had to wait for another one replays only a result stored
# after it started; when the run it waited for died, it runs the command
# itself rather than replay the entry it was asked to replace.
. "$(dirname "$0")/lib.sh"

# held NAME: counted; prints which run it was. When $TMP/hold.NAME exists
# as it starts, it records its pid and waits (up to 60 s) until that file
# is gone.
cat >"$TMP/bin/held" <<EOF
#!/bin/sh
echo run >>"$TMP/count.\$1"
n=\$((\$(wc -l <"$TMP/count.\$1")))
if [ -e "$TMP/hold.\$1" ]; then
	echo \$\$ >"$TMP/held.\$1"
	i=0
	while [ -e "$TMP/hold.\$1" ] && [ \$i -lt 1200 ]; do sleep 0.05; i=\$((i + 1)); done
fi
echo "\$1 run \$n"
EOF
chmod 755 "$TMP/bin/held"

# The holder's command's pid is read before the holder is killed: once it
# is, the waiter takes the lock and its own `held` may write held.r first.
test_expect_success 'a --refresh whose holder was killed runs, not replays the old entry' '
	cachedo --ttl 1h held r >out &&
	expect_eq "r run 1" "$(cat out)" &&
	touch "$TMP/hold.r" &&
	spawn cachedo --ttl 1h --refresh held r >/dev/null 2>&1 &&
	holder=$! &&
	wait_until test -s "$TMP/held.r" &&
	{ cachedo -v --ttl 1h --refresh held r >out 2>err & } &&
	waiter=$! &&
	lock_waiter &&
	held_pid=$(cat "$TMP/held.r") &&
	kill -KILL $holder &&
	kill "$held_pid" &&
	rm "$TMP/hold.r" &&
	wait $waiter &&
	expect_eq "r run 3" "$(cat out)" &&
	expect_no_grep "hit" err &&
	expect_count r 3 &&
	cachedo -v --ttl 1h held r >out 2>err &&
	expect_eq "r run 3" "$(cat out)" &&
	expect_grep "^cachedo: hit" err
'

test_expect_success 'a --refresh that waited replays the result stored by the one it waited for' '
	cachedo --ttl 1h held w >/dev/null &&
	touch "$TMP/hold.w" &&
	spawn cachedo --ttl 1h --refresh held w >/dev/null 2>&1 &&
	first=$! &&
	wait_until test -s "$TMP/held.w" &&
	{ cachedo -v --ttl 1h --refresh held w >out 2>err & } &&
	waiter=$! &&
	lock_waiter &&
	rm "$TMP/hold.w" &&
	wait $first &&
	wait $waiter &&
	expect_count w 2 &&
	expect_eq "w run 2" "$(cat out)" &&
	expect_grep "^cachedo: hit" err
'

test_done
