#!/bin/sh
# Entries you can trust: every entry is bound to the key it was stored
# under (one copied or moved to another key's place is a miss, counted as
# corrupt, and goes), and with --sign-key-file only entries signed with the
# same secret are served. Runs on every backend; the copying is each
# backend's own (a file, a SQLite row, a Redis key).
. "$(dirname "$0")/lib.sh"

# key_of NAME: the key of `counted NAME`.
key_of () {
	cachedo --key counted "$1"
}

# entry_file KEY: the file of KEY's entry (dir, mem, exec).
entry_file () {
	find "$STORE_PATH" -name "$1" -type f ! -path "*/locks/*"
}

# copy_entry FROM TO: puts the stored bytes of FROM's entry in TO's place,
# as someone with write access to the shared cache could.
copy_entry () {
	case $test_backend in
	sqlite)
		sql "$STORE_PATH" "UPDATE entry SET bytes = (SELECT bytes FROM entry WHERE key = X'$1') WHERE key = X'$2';" &&
		test "$(sql "$STORE_PATH" "SELECT count(*) FROM entry WHERE key = X'$2' AND bytes = (SELECT bytes FROM entry WHERE key = X'$1')")" = 1 ;;
	dir | mem | exec)
		cp "$(entry_file "$1")" "$(entry_file "$2")" ;;
	redis)
		test "$(redis_cli COPY "cachedo:v1::$1" "cachedo:v1::$2" REPLACE)" = 1 ;;
	esac
}

test_expect_success 'an entry copied to another key'"'"'s place is a miss, and the command runs' '
	expect_eq "aaa run 1" "$(cachedo counted aaa)" &&
	expect_eq "bbb run 1" "$(cachedo counted bbb)" &&
	copy_entry "$(key_of aaa)" "$(key_of bbb)" &&
	cachedo -v counted bbb >out 2>err &&
	expect_eq "bbb run 2" "$(cat out)" &&
	expect_count bbb 2 &&
	expect_grep "miss, stored (the stored entry is corrupt or belongs to another key" err &&
	expect_eq "bbb run 2" "$(cachedo counted bbb)" &&
	expect_count bbb 2 &&
	expect_eq "aaa run 1" "$(cachedo counted aaa)" &&
	expect_count aaa 1
'

test_expect_success 'the copy is counted as corrupt in --stats' '
	cachedo --stats --json >stats &&
	expect_grep "\"corrupt\":[1-9]" stats
'

test_expect_success 'a Redis key renamed onto another'"'"'s is a miss too' '
	test "$test_backend" = redis || exit 0
	expect_eq "ccc run 1" "$(cachedo counted ccc)" &&
	expect_eq "ddd run 1" "$(cachedo counted ddd)" &&
	redis_cli RENAME "cachedo:v1::$(key_of ccc)" "cachedo:v1::$(key_of ddd)" &&
	expect_eq "ddd run 2" "$(cachedo counted ddd)" &&
	expect_count ddd 2
'

# A signing secret of 40 bytes, mode 0600.
printf %s 0123456789abcdef0123456789abcdef-key-a >"$TMP/key-a"
printf %s 0123456789abcdef0123456789abcdef-key-b >"$TMP/key-b"
chmod 600 "$TMP/key-a" "$TMP/key-b"

test_expect_success 'writer and reader with the same key: a hit' '
	cachedo --sign-key-file "$TMP/key-a" counted sa >out1 &&
	cachedo --sign-key-file "$TMP/key-a" counted sa >out2 &&
	expect_count sa 1 &&
	expect_cmp out1 out2
'

test_expect_success 'a reader without a key ignores signatures' '
	CACHEDO_SIGN_KEY_FILE= cachedo counted sa >out3 &&
	expect_count sa 1 &&
	expect_cmp out1 out3
'

test_expect_success 'a reader with another key: a miss, said by -v; it stores its own' '
	CACHEDO_SIGN_KEY_FILE=$TMP/key-b cachedo -v counted sa >out 2>err &&
	expect_count sa 2 &&
	expect_grep "signature is not valid" err &&
	CACHEDO_SIGN_KEY_FILE=$TMP/key-b cachedo counted sa >out &&
	expect_count sa 2 &&
	cachedo --sign-key-file "$TMP/key-a" counted sa >out &&
	expect_count sa 3
'

test_expect_success 'an unsigned entry and a reader with a key: a miss' '
	cachedo counted unsigned >out &&
	cachedo -v --sign-key-file "$TMP/key-a" counted unsigned >out 2>err &&
	expect_count unsigned 2 &&
	expect_grep "the stored entry is not signed" err &&
	cachedo --explain -v --sign-key-file "$TMP/key-b" counted unsigned >explain &&
	expect_grep "signature is not valid" explain
'

test_expect_success 'a signed entry with any byte changed is a miss' '
	test "$test_backend" != redis || exit 0
	test "$test_backend" != exec || exit 0
	cachedo --sign-key-file "$TMP/key-a" counted flip >/dev/null &&
	key=$(key_of flip) &&
	i=0 &&
	while :; do
		# offsets from the start and the end: header, key, output, trailer, mac
		case $test_backend in
		sqlite) size=$(sql "$STORE_PATH" "SELECT length(bytes) FROM entry WHERE key = X'\''$key'\''") ;;
		*) f=$(entry_file "$key") && size=$(wc -c <"$f") ;;
		esac
		for off in 0 5 12 40 60 $((size - 84)) $((size - 60)) $((size - 36)) $((size - 20)) $((size - 1)); do
			i=$((i + 1))
			case $test_backend in
			sqlite)
				sql "$STORE_PATH" "UPDATE entry SET bytes = substr(bytes, 1, $off) || (CASE WHEN substr(bytes, $off + 1, 1) = X'\''ff'\'' THEN X'\''00'\'' ELSE X'\''ff'\'' END) || substr(bytes, $off + 2) WHERE key = X'\''$key'\''" ;;
			*)
				# the byte changes whatever it was: 0xff becomes 0x00
				b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d " ") &&
				printf "\\$(printf %o $(( b == 255 ? 0 : 255 )))" |
					dd of="$f" bs=1 seek=$off conv=notrunc 2>/dev/null ;;
			esac
			cachedo -q --sign-key-file "$TMP/key-a" counted flip >/dev/null &&
			expect_count flip $((i + 1)) || exit 1
		done
		break
	done
'

test_expect_success 'a key file readable by others, or too short, is refused (125)' '
	printf %s 0123456789abcdef0123456789abcdef >"$TMP/open-key" &&
	chmod 644 "$TMP/open-key" &&
	expect_status 125 cachedo --sign-key-file "$TMP/open-key" counted never 2>err &&
	expect_lines 1 err &&
	expect_grep "open-key.*group or others" err &&
	CACHEDO_SIGN_KEY_FILE=$TMP/open-key expect_status 125 cachedo counted never 2>err &&
	expect_grep "CACHEDO_SIGN_KEY_FILE" err &&
	printf %s short >"$TMP/short-key" && chmod 600 "$TMP/short-key" &&
	expect_status 125 cachedo --sign-key-file "$TMP/short-key" counted never 2>err &&
	expect_grep "at least 32 bytes" err &&
	expect_status 125 cachedo --sign-key-file "$TMP/no-such-key" counted never 2>err &&
	expect_lines 1 err &&
	expect_count never 0
'

test_expect_success 'the secret appears in no output and no stored byte' '
	cachedo -v --sign-key-file "$TMP/key-a" counted secret >out 2>err &&
	cachedo --stats --sign-key-file "$TMP/key-a" >>out 2>>err &&
	cachedo --list --sign-key-file "$TMP/key-a" >>out 2>>err &&
	expect_no_grep -F 0123456789abcdef out &&
	expect_no_grep -F 0123456789abcdef err &&
	for f in $(store_files) $(find "$XDG_CACHE_HOME" -type f); do
		expect_no_grep -F 0123456789abcdef "$f" || exit 1
	done &&
	if [ "$test_backend" = redis ]; then
		redis_cli --scan >keys &&
		while read -r k; do
			redis_cli --raw GET "$k" >v 2>/dev/null || :
			expect_no_grep -F 0123456789abcdef v || exit 1
		done <keys
	fi
'

test_done
