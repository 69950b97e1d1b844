#!/bin/sh
# Usage, version, and every kind of bad input: status 125, one stderr line,
# nothing run and nothing stored.
. "$(dirname "$0")/lib.sh"

# expect_usage_error NEEDLE CACHEDO-ARG...: cachedo exits 125 with one stderr
# line containing NEEDLE, prints nothing on stdout and creates no cache.
expect_usage_error () {
	test_needle=$1
	shift
	expect_status 125 cachedo "$@" >out 2>err &&
	expect_lines 1 err &&
	expect_grep -F -e "$test_needle" err &&
	expect_grep '^cachedo: ' err &&
	expect_lines 0 out &&
	store_files >stored &&
	expect_lines 0 stored
}

test_expect_success '--help prints usage and exits 0' '
	expect_status 0 cachedo --help >out 2>err &&
	expect_grep -e --ttl out &&
	expect_lines 0 err &&
	expect_status 0 cachedo -h >out2 &&
	expect_cmp out out2
'

test_expect_success '--version names the version and the sqlite backend' '
	expect_status 0 cachedo --version >out &&
	expect_grep "^cachedo [0-9]" out &&
	expect_grep "backends:.*sqlite" out &&
	expect_status 0 cachedo -V >out2 &&
	expect_cmp out out2
'

test_expect_success 'no command is a usage error' '
	expect_usage_error "no command" &&
	expect_usage_error "no command" -v --ttl 5s
'

test_expect_success 'an unknown option is named' '
	expect_usage_error "--bogus" --bogus counted unknown &&
	expect_usage_error "-Z" -Z counted unknown &&
	expect_count unknown 0
'

test_expect_success 'a mistyped long option gets a suggestion' '
	expect_usage_error "unknown option '\''--tll'\'' (did you mean --ttl?)" --tll 5 counted typo &&
	expect_usage_error "(did you mean --refresh?)" --refrsh counted typo &&
	expect_usage_error "(did you mean --json?)" --jsno --stats &&
	expect_usage_error "(did you mean --no-cache?)" --no-cahce counted typo &&
	expect_usage_error "unknown option '\''--bogus'\'' (try" --bogus counted typo &&
	expect_count typo 0
'

# The tests below that run commands keep their entries and locks away from
# the cache that expect_usage_error checks is empty.
test_expect_success 'a long option typed with one dash is named as such' '
	CACHEDO_CACHE=sqlite:$TMP/parsing.db XDG_RUNTIME_DIR=$TMP/parsing-run &&
	expect_usage_error "'\''-ttl'\'' is a long option typed with one dash: write '\''--ttl'\'' (or -t VALUE)" \
		-ttl 5 -- counted onedash &&
	expect_usage_error "write '\''--ttl'\''" -ttl=5 counted onedash &&
	expect_usage_error "write '\''--verbose'\'' (or -v)" -verbose counted onedash &&
	expect_usage_error "write '\''--refresh'\''" -refresh counted onedash &&
	expect_usage_error "unknown option '\''-r'\'' in '\''-ref'\'' (did you mean --refresh?)" \
		-ref counted onedash &&
	expect_count onedash 0 &&
	cachedo -vq counted onedash 2>err &&
	expect_count onedash 1 &&
	cachedo -t5 counted onedash &&
	expect_count onedash 1
'

test_expect_success 'an unambiguous prefix of a long option is that option' '
	CACHEDO_CACHE=sqlite:$TMP/parsing.db XDG_RUNTIME_DIR=$TMP/parsing-run &&
	cachedo --lock-t 1m --fail 1h counted prefix >out &&
	cachedo --lock-t=1m --fail=1h counted prefix >out &&
	expect_count prefix 1 &&
	cachedo --ttl 1h --ref counted prefix >out &&
	expect_count prefix 2 &&
	cachedo --verb --ttl 1h counted prefix 2>err &&
	expect_grep "^cachedo: hit" err &&
	expect_status 0 cachedo --ke counted prefix >key &&
	expect_eq "$(cachedo --key counted prefix)" "$(cat key)" &&
	expect_usage_error "invalid --fail-ttl '\''5x'\''" --fail-t 5x counted prefix &&
	expect_usage_error "option '\''--list'\'' takes no value" --li=3 &&
	expect_count prefix 2
'

test_expect_success 'an ambiguous prefix lists the candidates' '
	CACHEDO_CACHE=sqlite:$TMP/parsing.db XDG_RUNTIME_DIR=$TMP/parsing-run &&
	expect_usage_error "option '\''--st'\'' is ambiguous: --stale, --stdin, --stats" --st counted amb &&
	expect_usage_error "option '\''--tt'\'' is ambiguous: --ttl, --tty" --tt 5 counted amb &&
	expect_usage_error "--no-cache-failures, --no-cache, --no-cwd" --no-c counted amb &&
	cachedo --no-cache counted amb &&
	expect_count amb 1
'

for bad in abc -5 0 5x; do
	test_expect_success "--ttl $bad is refused before anything runs" '
		expect_usage_error "'\''$bad'\''" --ttl "$bad" counted ttl &&
		expect_usage_error "'\''$bad'\''" "--ttl=$bad" counted ttl &&
		expect_usage_error "'\''$bad'\''" -t "$bad" counted ttl &&
		expect_count ttl 0
	'
done

test_expect_success 'a bad --max-output is refused' '
	expect_usage_error "garbage" --max-output garbage counted maxout &&
	expect_count maxout 0
'

test_expect_success 'bad durations for the other options are refused' '
	for opt in --fail-ttl --stale --lock-timeout; do
		expect_usage_error "'\''abc'\''" $opt abc counted durations &&
		expect_usage_error "$opt" $opt 5x counted durations || exit 1
	done &&
	expect_count durations 0
'

test_expect_success 'an unknown cache URL scheme is refused' '
	expect_usage_error "ftp" --cache ftp://x counted scheme &&
	expect_count scheme 0
'

test_expect_success 'a cache path without a scheme gets the URL it meant' '
	expect_usage_error "invalid --cache '\''$TMP/x.db'\'': no scheme (did you mean sqlite:$TMP/x.db?)" \
		--cache "$TMP/x.db" counted scheme &&
	expect_usage_error "(did you mean sqlite:./x.db?)" -c ./x.db counted scheme &&
	mkdir -p "$TMP/entries" &&
	expect_usage_error "(did you mean dir:$TMP/entries?)" -c "$TMP/entries" counted scheme &&
	expect_count scheme 0
'

test_expect_success 'a known scheme with the wrong separator gets its right form' '
	expect_usage_error "a redis URL is written redis://HOST[:PORT][/DB] (did you mean redis://127.0.0.1?)" \
		-c redis:/127.0.0.1 counted scheme &&
	expect_usage_error "(did you mean unix:///run/r.sock?)" -c unix:/run/r.sock counted scheme &&
	expect_usage_error "(did you mean redis://u:***@h?)" -c redis:u:secret@h counted scheme &&
	expect_no_grep secret err &&
	expect_count scheme 0
'

test_expect_success 'an option missing its value is refused' '
	expect_usage_error "--ttl" --ttl
'

test_expect_success 'a config line that does not parse names file and line' '
	XDG_CONFIG_HOME=$TMP/badconfig &&
	write_config <<-\EOF &&
	# a comment
	ttl = 5m
	foo bar
	EOF
	expect_usage_error "$XDG_CONFIG_HOME/cachedo/config:3" counted config &&
	expect_count config 0
'

test_expect_success 'a bad CACHEDO_TTL is named' '
	CACHEDO_TTL=abc &&
	export CACHEDO_TTL &&
	expect_usage_error CACHEDO_TTL counted envttl &&
	expect_usage_error abc counted envttl &&
	expect_count envttl 0
'

test_expect_success 'option parsing stops at the first non-option' '
	expect_status 0 cachedo echo --ttl >out 2>err &&
	expect_eq --ttl "$(cat out)" &&
	expect_status 0 cachedo echo -v --ttl abc >out 2>err &&
	expect_eq "-v --ttl abc" "$(cat out)" &&
	expect_lines 0 err &&
	expect_status 0 cachedo -- printf "%s\n" --help >out &&
	expect_eq --help "$(cat out)"
'

# Found by the command-line fuzz target: each letter of a bundle is a
# setting of its own (a heap overflow under ASan before).
test_expect_success 'a bundle of many short flags in one argument' '
	expect_status 0 cachedo -vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvq counted bundle >out 2>err &&
	expect_eq "bundle run 1" "$(cat out)" &&
	expect_no_grep -i "sanitizer\|runtime error" err
'

# no_raw_controls FILE: FILE holds no control byte but the line ends.
no_raw_controls () {
	expect_no_grep "$(printf "[\001-\011\013-\037\177]")" "$1"
}

test_expect_success 'a bad value with a newline or ESC is one line, escaped' '
	expect_status 125 cachedo --ttl "$(printf "5\nx\033[31m")" true 2>err &&
	expect_lines 1 err &&
	expect_grep -F "invalid --ttl '"'"'5\nx\x1b[31m'"'"'" err &&
	no_raw_controls err &&
	expect_status 125 cachedo "--t$(printf "\033")tl" 5 true 2>err &&
	expect_lines 1 err &&
	expect_grep -F "\x1b" err &&
	no_raw_controls err &&
	expect_status 125 cachedo -c "$(printf "bogus\r\033:x")" true 2>err &&
	expect_lines 1 err &&
	expect_grep -F "bogus\r\x1b" err &&
	no_raw_controls err &&
	CACHEDO_STALE="$(printf "1\nm")" expect_status 125 cachedo true 2>err &&
	expect_lines 1 err &&
	expect_grep -F "1\nm" err
'

test_expect_success 'a warning that echoes a path with control bytes is one line' '
	bad="$TMP/file$(printf "\r\033")x" &&
	: >"$bad" &&
	expect_status 3 cachedo -c "dir:$bad/cache" sh -c "exit 3" 2>err &&
	expect_lines 1 err &&
	expect_grep -F "file\r\x1bx" err &&
	no_raw_controls err
'

test_expect_success 'non-ASCII text in a message stays as it is; broken bytes are escaped' '
	expect_status 125 cachedo --ttl "$(printf "5\303\251\377")" true 2>err &&
	expect_grep -F "$(printf "5\303\251")\xff" err
'

test_done
