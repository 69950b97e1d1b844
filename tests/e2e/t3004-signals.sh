#!/bin/sh
# Signals sent to cachedo reach the command exactly once and store nothing;
# cachedo's own file descriptors never reach the command.
. "$(dirname "$0")/lib.sh"

# trapper SIG: when ./armed.SIG exists, touch ./ready.SIG, log each SIG to
# ./got.SIG, and after the first one linger 0.3 s (to catch a second
# delivery) and exit 3; otherwise print "done".
cat >"$TMP/bin/trapper" <<\EOF
#!/bin/sh
if [ -e "armed.$1" ]; then
	trap 'echo got >>"got.$1"' "$1"
	: >"ready.$1"
	i=0
	while ! [ -s "got.$1" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	sleep 0.3
	exit 3
fi
echo done
EOF
chmod 755 "$TMP/bin/trapper"

for sig in TERM INT HUP QUIT; do
	test_expect_success "SIG$sig to cachedo reaches the command once; nothing stored" '
		: >armed.$sig &&
		spawn cachedo counted sig$sig trapper $sig >out 2>err &&
		pid=$! &&
		wait_for ready.$sig &&
		kill -$sig $pid &&
		{ wait $pid || :; } &&
		expect_lines 1 got.$sig &&
		rm armed.$sig &&
		cachedo counted sig$sig trapper $sig >out &&
		expect_eq done "$(cat out)" &&
		expect_count sig$sig 2
	'
done

command -v script >/dev/null && test_set_prereq SCRIPT

# Ctrl-C on a terminal signals the whole foreground process group: the
# command gets it from the terminal, and cachedo must not send a second one.
test_expect_success 'a signal to the whole process group reaches the command once' '
	: >armed.TERM &&
	rm -f got.TERM ready.TERM pgid &&
	{ setsid sh -c "echo \$\$ >pgid; exec cachedo counted sigpg trapper TERM" \
		>out 2>err & } &&
	wait_for ready.TERM &&
	wait_for pgid &&
	pgid=$(cat pgid) &&
	kill -TERM "-$pgid" &&
	wait &&
	expect_lines 1 got.TERM &&
	rm armed.TERM
'

test_expect_success SCRIPT 'Ctrl-C on a terminal reaches the command once; nothing stored' '
	mkdir tty &&
	cd tty &&
	: >armed.INT &&
	{
		{ wait_for ready.INT && printf "\003"; } |
			timeout 20 script -qec "cachedo counted ttyint trapper INT" /dev/null ||
			:
	} >/dev/null &&
	expect_lines 1 got.INT &&
	rm armed.INT &&
	cachedo counted ttyint trapper INT >out &&
	expect_eq done "$(cat out)" &&
	expect_count ttyint 2
'

test_expect_success 'cachedo opens no descriptor that the command inherits' '
	ls /proc/self/fd >expect &&
	cachedo counted fds ls /proc/self/fd >out &&
	expect_cmp expect out &&
	echo data | cachedo --stdin counted fds ls /proc/self/fd >out &&
	expect_cmp expect out
'

test_done
