#!/bin/sh
# Every long option cachedo accepts (its options table in cmd/main.c) is in
# --help, in the manual page and in the three completions, and nothing else
# is: documentation that names an option cachedo lacks fails too.
. "$(dirname "$0")/lib.sh"

# Nothing here depends on the cache backend: run once, with the default.
test "$test_backend" = sqlite || skip_all "independent of the backend (runs with sqlite)"

# The options table: {"name", ...} entries between "options[] = {" and "};".
sed -n '/^} options\[\] = {/,/^};/p' "$ROOT/cmd/main.c" |
	grep -o '{"[a-z][a-z-]*"' | sed 's/{"//; s/"//' | sort -u >"$TMP/table"

# same_options WHAT FILE: FILE lists exactly the options of the table.
same_options () {
	sort -u "$2" >"$2.sorted"
	if ! cmp -s "$TMP/table" "$2.sorted"; then
		echo "$1 differs from the options table (< table only, > $1 only):" >&2
		diff "$TMP/table" "$2.sorted" | grep '^[<>]' >&2
		return 1
	fi
}

test_expect_success 'the options table was found' '
	test "$(wc -l <"$TMP/table")" -ge 25 &&
	expect_grep -x ttl "$TMP/table" &&
	expect_grep -x zero-stats "$TMP/table"
'

test_expect_success 'cachedo accepts every option of the table, and only those' '
	while read -r o; do
		cachedo --"$o" </dev/null >/dev/null 2>err || :
		if grep -q "unknown option" err; then
			echo "--$o is in the table but not accepted" >&2
			return 1
		fi
	done <"$TMP/table" &&
	expect_status 125 cachedo --no-such-option 2>err &&
	expect_grep "unknown option" err
'

test_expect_success '--help documents exactly the options' '
	cachedo --help >help &&
	grep -o -e "--[a-z][a-z-]*" help | sed "s/^--//" >found &&
	same_options --help found &&
	while read -r o; do
		grep -q -E "^  (-[a-zA-Z], |    )--$o( |\$)" help || {
			echo "--$o has no line of its own in --help" >&2
			return 1
		}
	done <"$TMP/table"
'

test_expect_success 'the manual page documents exactly the options' '
	man=$ROOT/cmd/cachedo.1 &&
	grep -o -e "\\\\-\\\\-[a-z][a-z\\\\-]*" "$man" |
		sed -e "s/^\\\\-\\\\-//" -e "s/\\\\-/-/g" >found &&
	same_options cachedo.1 found &&
	while read -r o; do
		m=$(printf %s "$o" | sed "s/-/\\\\\\\\-/g") &&
		grep -A1 -e "^\\.TP" "$man" | grep -q -e "\\\\-\\\\-$m\\( \\|\$\\|\"\\)" || {
			echo "--$o has no paragraph of its own in cachedo.1" >&2
			return 1
		}
	done <"$TMP/table"
'

test_expect_success 'the bash completion offers exactly the options' '
	grep -o -e "--[a-z][a-z-]*" "$ROOT/completions/cachedo.bash" |
		sed "s/^--//" >found &&
	same_options cachedo.bash found
'

test_expect_success 'the zsh completion offers exactly the options' '
	grep -o -e "--[a-z][a-z-]*" "$ROOT/completions/_cachedo" |
		sed "s/^--//" >found &&
	same_options _cachedo found
'

test_expect_success 'the fish completion offers exactly the options' '
	grep "^complete " "$ROOT/completions/cachedo.fish" |
		grep -o -e " -l [a-z][a-z-]*" | sed "s/^ -l //" >found &&
	grep -v __fish_complete_subcommand "$ROOT/completions/cachedo.fish" |
		grep -o -e "--[a-z][a-z-]*" | sed "s/^--//" >mentioned &&
	same_options cachedo.fish found &&
	sort -u mentioned >mentioned.sorted &&
	comm -13 "$TMP/table" mentioned.sorted >extra &&
	expect_lines 0 extra
'

test_expect_success 'short options agree between the table, --help and the man page' '
	sed -n "/^} options\\[\\] = {/,/^};/p" "$ROOT/cmd/main.c" |
		grep -o "{\"[a-z-]*\", .[a-zA-Z]." |
		sed "s/{\"\\([a-z-]*\\)\", .\\(.\\)./\\2 \\1/" | sort >shorts &&
	test -s shorts &&
	cachedo --help >help &&
	while read -r c o; do
		expect_grep -e "^  -$c, --$o" help &&
		expect_grep -e "^\\.BR \\\\-$c \", \" \\\\-\\\\-$(printf %s "$o" | sed "s/-/\\\\\\\\-/g")" "$ROOT/cmd/cachedo.1" &&
		expect_grep -e "-s $c -l $o" "$ROOT/completions/cachedo.fish" &&
		expect_grep -e "-$c+*,--$o" "$ROOT/completions/_cachedo" || return 1
	done <shorts
'

# The backends' URL forms and options, as --help prints them from the
# backends' own tables: the schemes in $TMP/schemes, the options in
# $TMP/url-options.
cachedo --help | sed -n '/^Cache URLs/,/^$/p' >"$TMP/urls"
grep -o '^  [a-z][a-z]*:\(//\)\{0,1\}' "$TMP/urls" | sed 's/^  //' | sort -u >"$TMP/schemes"
sed -n 's/^ *options: //p; s/^            *\([a-z][a-z-]*\(, [a-z][a-z-]*\)*,\{0,1\}\)$/\1/p' "$TMP/urls" |
	tr ',' '\n' | sed 's/ //g' | grep . | sort -u >"$TMP/url-options"

sq="'"

# same_schemes WHAT FILE: FILE lists exactly the schemes of --help.
same_schemes () {
	sort -u "$2" >"$2.sorted"
	if ! cmp -s "$TMP/schemes" "$2.sorted"; then
		echo "$1 differs from the backends of --help (< --help only, > $1 only):" >&2
		diff "$TMP/schemes" "$2.sorted" | grep '^[<>]' >&2
		return 1
	fi
}

test_expect_success 'the backends were found in --help' '
	expect_grep -x "redis://" "$TMP/schemes" &&
	expect_grep -x "exec:" "$TMP/schemes" &&
	expect_grep -x "timeout" "$TMP/url-options" &&
	expect_grep -x "db" "$TMP/url-options"
'

test_expect_success 'the manual page lists exactly the backends, and every URL option' '
	man=$ROOT/cmd/cachedo.1 &&
	sed -n "/^\\.SH BACKENDS/,/^\\.SH /p" "$man" >backends &&
	grep -A1 "^\\.T[PQ]" backends | grep -o "^\\.BI\\{0,1\\} [a-z][a-z]*:\\(//\\)\\{0,1\\}" |
		sed "s/^\\.BI\\{0,1\\} //" >found &&
	same_schemes cachedo.1 found &&
	while read -r o; do
		m=$(printf %s "$o" | sed "s/-/\\\\\\\\-/g") &&
		grep -q -e "^\\.BR\\{0,1\\} $m\\( \\|\$\\)" backends || {
			echo "URL option $o has no paragraph in BACKENDS of cachedo.1" >&2
			return 1
		}
	done <"$TMP/url-options"
'

test_expect_success 'the completions offer exactly the backends' '
	sed -n "/^_cachedo_url()/,/^}/p" "$ROOT/completions/cachedo.bash" |
		sed -n "s/.*compgen -W $sq\\([^$sq]*\\)$sq.*/\\1/p" | tr " " "\\n" | grep ":" >found &&
	same_schemes cachedo.bash found &&
	sed -n "/^ *schemes=(/,/^ *)/p" "$ROOT/completions/_cachedo" |
		sed -n "s/^ *$sq\\([a-z]*\\)\\\\\\(:\\(\\/\\/\\)\\{0,1\\}\\).*/\\1\\2/p" >found &&
	same_schemes _cachedo found &&
	sed -n "/^function __cachedo_url/,/^end/p" "$ROOT/completions/cachedo.fish" |
		grep -o "[a-z][a-z]*:\\(//\\)\\{0,1\\} $sq" | sed "s/ .//" >found &&
	same_schemes cachedo.fish found
'

test_done
