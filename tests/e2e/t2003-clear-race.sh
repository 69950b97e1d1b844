#!/bin/sh
# --clear while writers store large results: a writer whose entry was
# cleared under it drops it quietly (-v says why) or stores it; it never
# warns about a race the user caused, and the command keeps its output.
. "$(dirname "$0")/lib.sh"

# A helper's put has no way to say "cleared meanwhile"; the example helper
# fails such a put, as a helper may.
test "$test_backend" != exec || skip_all "exec: the helper decides"

# big N: 60 MB of zeros, then "N" (its own key per N).
cat >"$TMP/bin/big" <<'EOF'
#!/bin/sh
head -c 60000000 /dev/zero
echo "$1"
EOF
chmod 755 "$TMP/bin/big"

test_expect_success '--clear in a loop while results are stored: no warning' '
	: >"$TMP/clearing" &&
	{ while [ -e "$TMP/clearing" ]; do cachedo --clear 2>>clear.err || :; done & } &&
	i=0 &&
	while [ $i -lt 8 ]; do
		i=$((i + 1)) &&
		expect_status 0 cachedo -v big $i >out 2>err.$i &&
		expect_eq 60000002 $(($(wc -c <out))) "bytes of run $i" &&
		expect_eq "$i" "$(tail -n 1 out | tr -d "\\0")" "run $i" &&
		expect_no_grep "warning" err.$i &&
		expect_grep "^cachedo: miss" err.$i || break
	done &&
	rm "$TMP/clearing" &&
	wait &&
	test $i = 8 &&
	expect_lines 0 clear.err
'

test_expect_success 'after the race the cache stores and hits again' '
	cachedo counted after >/dev/null &&
	cachedo counted after >/dev/null &&
	expect_count after 1
'

test_done
