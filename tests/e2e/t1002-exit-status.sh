#!/bin/sh
# Exit statuses: replayed on a hit; 126, 127 and signal deaths never stored.
. "$(dirname "$0")/lib.sh"

for n in 0 1 7 200; do
	test_expect_success "exit status $n is replayed on a hit" '
		expect_status $n cachedo counted exit$n sh -c "echo out$n; exit $n" >out1 &&
		expect_status $n cachedo counted exit$n sh -c "echo out$n; exit $n" >out2 &&
		expect_count exit$n 1 &&
		expect_eq out$n "$(cat out2)"
	'
done

test_expect_success '-v on a hit of a failure names its status' '
	expect_status 7 cachedo -v counted failhit sh -c "exit 7" 2>err &&
	expect_status 7 cachedo -v counted failhit sh -c "exit 7" 2>err &&
	expect_count failhit 1 &&
	expect_grep -x "cachedo: hit (age [0-9][^,]*, exit 7)" err &&
	cachedo -v counted okhit true 2>err &&
	cachedo -v counted okhit true 2>err &&
	expect_grep -x "cachedo: hit (age [0-9][^,]*)" err
'

test_expect_success 'a non-executable file gives 126 and is not stored' '
	printf "#!/bin/sh\necho ran >>\"$TMP/ran126\"\n" >script126 &&
	chmod 644 script126 &&
	expect_status 126 cachedo -v ./script126 >out 2>err &&
	expect_grep "script126" err &&
	expect_status 126 cachedo -v ./script126 >out 2>err &&
	expect_no_grep "hit (age" err &&
	expect_lines 0 out &&
	chmod 755 script126 &&
	expect_status 0 cachedo ./script126 &&
	expect_lines 1 "$TMP/ran126"
'

test_expect_success 'a missing command gives 127 and is not stored' '
	expect_status 127 cachedo -v no-such-command-xyz arg >out 2>err &&
	expect_grep no-such-command-xyz err &&
	expect_status 127 cachedo -v no-such-command-xyz arg >out 2>err &&
	expect_no_grep "hit (age" err &&
	expect_lines 0 out &&
	printf "#!/bin/sh\necho \"found \$1\"\n" >"$TMP/bin/no-such-command-xyz" &&
	chmod 755 "$TMP/bin/no-such-command-xyz" &&
	expect_status 0 cachedo no-such-command-xyz arg >out &&
	expect_eq "found arg" "$(cat out)"
'

test_expect_success 'a command killed by SIGTERM: status 143, not stored' '
	expect_status 143 cachedo counted sigterm sh -c "kill -TERM \$\$" &&
	expect_count sigterm 1 &&
	expect_status 143 cachedo counted sigterm sh -c "kill -TERM \$\$" &&
	expect_count sigterm 2
'

test_expect_success 'a command killed by SIGKILL: status 137, not stored' '
	expect_status 137 cachedo counted sigkill sh -c "kill -KILL \$\$" &&
	expect_status 137 cachedo counted sigkill sh -c "kill -KILL \$\$" &&
	expect_count sigkill 2
'

for opt in "--fail-ttl 0" "--fail-ttl=0" --no-cache-failures; do
	test_expect_success "$opt: failures run every time, successes are cached" '
		name=$(printf %s "$opt" | tr " =-" seh) &&
		expect_status 3 cachedo $opt counted f$name sh -c "exit 3" &&
		expect_status 3 cachedo $opt counted f$name sh -c "exit 3" &&
		expect_count f$name 2 &&
		expect_status 0 cachedo $opt counted s$name &&
		expect_status 0 cachedo $opt counted s$name &&
		expect_count s$name 1
	'
done

test_expect_success 'a stored failure is not served to --no-cache-failures' '
	expect_status 5 cachedo counted failold sh -c "exit 5" &&
	expect_status 5 cachedo --no-cache-failures counted failold sh -c "exit 5" &&
	expect_count failold 2
'

test_expect_success 'a failure stored by default is replayed with --fail-ttl unset' '
	expect_status 2 cachedo counted failstored sh -c "echo e >&2; exit 2" 2>err1 &&
	expect_status 2 cachedo counted failstored sh -c "echo e >&2; exit 2" 2>err2 &&
	expect_count failstored 1 &&
	expect_cmp err1 err2
'

test_expect_success 'an ignored SIGCHLD inherited from the caller loses no status' '
	command -v bash >/dev/null || { echo "no bash to ignore SIGCHLD with"; return 0; } &&
	bash -c "trap \"\" CHLD; grep -q \"^SigIgn:.*[1-9a-f]\" /proc/self/status" &&
	export CACHEDO &&
	expect_status 3 bash -c "trap \"\" CHLD; exec \"\$CACHEDO\" --no-cache sh -c \"exit 3\"" &&
	expect_status 4 bash -c "trap \"\" CHLD; exec \"\$CACHEDO\" counted ignchld sh -c \"exit 4\"" &&
	expect_status 4 cachedo counted ignchld sh -c "exit 4" &&
	expect_count ignchld 1
'

test_done
