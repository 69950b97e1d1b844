#!/bin/sh
# Replay is byte-exact: binary data, both streams, their interleaving.
. "$(dirname "$0")/lib.sh"

bytes='A\000B\377\300\200\n\000\r\ninvalid \355\240\200 utf-8\000end'

test_expect_success 'binary stdout (NUL, invalid UTF-8, no final newline) replays exactly' '
	printf "$bytes" >expected &&
	expect_eq 31 "$(wc -c <expected)" "size of the expected bytes" &&
	cachedo counted binout printf "$bytes" >out1 &&
	cachedo counted binout printf "$bytes" >out2 &&
	expect_count binout 1 &&
	expect_cmp expected out1 &&
	expect_cmp expected out2 &&
	expect_eq "41 00 42 ff c0 80 0a 00" "$(head -c 8 out2 | od -An -tx1 | sed "s/^ *//")" &&
	expect_eq "e n d" "$(tail -c 3 out2 | od -An -c | xargs)"
'

test_expect_success 'an empty output replays as empty' '
	cachedo counted empty true >out1 2>err1 &&
	cachedo counted empty true >out2 2>err2 &&
	expect_count empty 1 &&
	expect_eq 0 $(cat out1 err1 out2 err2 | wc -c) "byte count"
'

test_expect_success 'binary stderr replays exactly' '
	printf "$bytes" >expected &&
	cachedo counted binerr sh -c "cat expected >&2" >out1 2>err1 &&
	cachedo counted binerr sh -c "cat expected >&2" >out2 2>err2 &&
	expect_count binerr 1 &&
	expect_cmp expected err1 &&
	expect_cmp expected err2 &&
	expect_lines 0 out2
'

# Writes a, b, c, d to stdout, stderr, stdout, stderr, each only once
# cachedo has passed the one before on to the file $0: the order is certain,
# and a cachedo that does not stream live never gets past "a".
abcd='w () { until [ "$(cat "$0")" = "$1" ]; do sleep 0.01; done; }
printf a; w a; printf b >&2; w ab; printf c; w abc; printf d >&2'

test_expect_success 'stdout and stderr keep their interleaving on one file' '
	timeout 20 cachedo counted inter sh -c "$abcd" "$PWD/both" >both 2>&1 &&
	expect_eq abcd "$(cat both)" "output of the miss" &&
	cachedo counted inter sh -c "$abcd" "$PWD/both" >both 2>&1 &&
	expect_count inter 1 &&
	expect_eq abcd "$(cat both)" "output of the hit"
'

test_expect_success 'a hit replays each stream exactly when they are apart' '
	ab="printf a; printf b >&2; printf c; printf d >&2" &&
	cachedo counted apart sh -c "$ab" >out1 2>err1 &&
	cachedo counted apart sh -c "$ab" >out2 2>err2 &&
	cachedo counted apart sh -c "$ab" >out3 2>/dev/null &&
	cachedo counted apart sh -c "$ab" >/dev/null 2>err4 &&
	expect_count apart 1 &&
	printf ac >ac &&
	printf bd >bd &&
	expect_cmp ac out1 &&
	expect_cmp bd err1 &&
	expect_cmp ac out2 &&
	expect_cmp bd err2 &&
	expect_cmp ac out3 &&
	expect_cmp bd err4
'

test_expect_success 'a large interleaved output replays in the recorded order' '
	chunks="for i in \$(seq 1 40); do head -c 4000 /dev/zero | tr \"\\0\" o; head -c 3000 /dev/zero | tr \"\\0\" e >&2; done" &&
	cachedo counted biginter sh -c "$chunks" >both1 2>&1 &&
	cachedo counted biginter sh -c "$chunks" >both2 2>&1 &&
	expect_count biginter 1 &&
	expect_eq 280000 $(wc -c <both1) "byte count" &&
	expect_cmp both1 both2 &&
	cachedo counted biginter sh -c "$chunks" >out 2>err &&
	expect_eq 160000 $(wc -c <out) "stdout size" &&
	expect_eq 120000 $(wc -c <err) "stderr size" &&
	expect_eq 0 $(tr -d o <out | wc -c) "bytes other than o on stdout" &&
	expect_eq 0 $(tr -d e <err | wc -c) "bytes other than e on stderr"
'

test_expect_success 'started with fds 0, 1 and 2 closed, a run still stores' '
	expect_status 0 cachedo counted closed sh -c "echo out; echo err >&2" <&- >&- 2>&- &&
	expect_status 0 cachedo counted closed sh -c "echo out; echo err >&2" >out 2>err &&
	expect_count closed 1 &&
	expect_eq out "$(cat out)" &&
	expect_eq err "$(cat err)"
'

test_expect_success '5 MiB on each stream: no deadlock, exact replay' '
	head -c 5242880 /dev/urandom >r1 &&
	head -c 5242880 /dev/urandom >r2 &&
	sha256sum <r1 >r1.sum &&
	sha256sum <r2 >r2.sum &&
	n=0 &&
	for order in "cat r1 >&2; cat r2" "cat r2; cat r1 >&2"; do
		n=$((n + 1)) &&
		for run in miss hit; do
			expect_status 0 timeout 60 cachedo counted big$n sh -c "$order" >out 2>err &&
			sha256sum <err >err.sum &&
			sha256sum <out >out.sum &&
			expect_cmp r1.sum err.sum &&
			expect_cmp r2.sum out.sum || exit 1
		done &&
		expect_count big$n 1 || exit 1
	done
'

# The README's quick-start note: the command never sees a terminal, and
# output forced with --color=always is stored and replayed as it was.
command -v script >/dev/null 2>&1 && test_set_prereq SCRIPT
test_expect_success SCRIPT 'the command sees pipes even when cachedo runs on a terminal' '
	printf "%s\n" "test -t 1 && echo out-tty || echo out-pipe" \
		"test -t 2 && echo err-tty >&2 || echo err-pipe >&2" >probe.sh &&
	script -qec "cachedo counted tty sh probe.sh" /dev/null >typescript &&
	expect_grep out-pipe typescript &&
	expect_grep err-pipe typescript &&
	expect_no_grep -- -tty typescript &&
	expect_count tty 1
'

test_expect_success 'forced colour is stored and replayed byte for byte' '
	mkdir colours && : >colours/a && mkdir colours/d &&
	cachedo counted colour ls --color=always colours >first &&
	cachedo counted colour ls --color=always colours >second &&
	expect_count colour 1 &&
	expect_cmp first second &&
	expect_grep -F "$(printf "\033[")" second
'

test_expect_success '--tty: stdout and stderr are one terminal, stored and replayed as one' '
	printf "%s\n" "test -t 1 && echo out-tty || echo out-pipe" \
		"test -t 2 && echo err-tty >&2 || echo err-pipe >&2" \
		"printf \"raw\\nlines\\n\"" >ttyprobe.sh &&
	printf "out-tty\nerr-tty\nraw\nlines\n" >expect &&
	cachedo --tty counted ttyrun sh ttyprobe.sh >out 2>err &&
	expect_cmp expect out &&
	expect_lines 0 err &&
	cachedo --tty counted ttyrun sh ttyprobe.sh >out 2>err &&
	expect_cmp expect out &&
	expect_lines 0 err &&
	expect_count ttyrun 1 &&
	cachedo counted ttyrun sh ttyprobe.sh >out 2>err &&
	expect_grep -x out-pipe out &&
	expect_grep -x err-pipe err &&
	expect_count ttyrun 2
'

test_expect_success '--tty is in the key and shown by --explain' '
	test "$(cachedo --key counted k)" != "$(cachedo --tty --key counted k)" &&
	cachedo --tty --explain counted k >out &&
	expect_grep -x "tty      the command runs on a pseudo-terminal" out &&
	cachedo --explain counted k >out &&
	expect_no_grep "^tty" out
'

test_expect_success '--tty without the cache still runs on a terminal; ls colours' '
	cachedo --no-cache --tty sh -c "test -t 1 && echo yes" >out &&
	expect_eq yes "$(cat out)" &&
	mkdir -p tdir/sub &&
	cachedo --tty ls --color=auto tdir >out &&
	expect_grep -F "$(printf "\033[")" out
'

test_done
