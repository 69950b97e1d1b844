#!/bin/sh
# A broken or unsafe cache never stops the command: it runs uncached, keeps
# its own output and status, and cachedo warns once (or not at all with -q).
. "$(dirname "$0")/lib.sh"

test_expect_success 'an unwritable cache path' '
	expect_fail_open proc --cache sqlite:/proc/nope/cache.db
'

test_expect_success 'a directory where the database file should be' '
	mkdir isdir.db &&
	expect_fail_open isdir --cache "sqlite:$PWD/isdir.db"
'

test_expect_success 'a file of garbage where the database should be: moved aside, once' '
	head -c 65536 /dev/zero | tr "\0" G >garbage.db &&
	expect_status 3 cachedo --cache "sqlite:$PWD/garbage.db" counted garbage \
		sh -c "echo out; echo err >&2; exit 3" >out 2>err &&
	expect_eq out "$(cat out)" && expect_grep -x err err && expect_lines 2 err &&
	expect_grep "^cachedo: warning: .*garbage.db.* was damaged" err &&
	test -f garbage.db.corrupt &&
	expect_status 3 cachedo --cache "sqlite:$PWD/garbage.db" counted garbage \
		sh -c "echo out; echo err >&2; exit 3" >out 2>err &&
	expect_lines 1 err && expect_count garbage 1
'

test_expect_success 'CACHEDO_CACHE pointing somewhere unwritable' '
	CACHEDO_CACHE=sqlite:/proc/nope/cache.db &&
	expect_fail_open envproc
'

# expect_modes DIR: every directory below DIR is 0700, every file 0600
# (call it once the upkeep settled: its temp files come and go).
expect_modes () {
	find "$1" -mindepth 1 -type d | while read -r f; do
		expect_eq 700 "$(stat -c %a "$f")" "mode of $f" || exit 1
	done &&
	find "$1" -type f | while read -r f; do
		expect_eq 600 "$(stat -c %a "$f")" "mode of $f" || exit 1
	done &&
	test -n "$(find "$1" -type f)"
}

test_expect_success 'a deleted working directory: the command still runs' '
	mkdir gone &&
	cd gone &&
	rmdir ../gone &&
	expect_status 3 cachedo counted gone sh -c "echo out; exit 3" >"$TMP/out" 2>"$TMP/err" &&
	expect_eq out "$(cat "$TMP/out")" &&
	grep "^cachedo:" "$TMP/err" >"$TMP/ours" || : &&
	expect_lines 1 "$TMP/ours" &&
	expect_grep "^cachedo: warning: " "$TMP/ours" &&
	expect_status 3 cachedo -q counted gone sh -c "echo out; exit 3" >"$TMP/out" 2>"$TMP/err" &&
	expect_no_grep "^cachedo:" "$TMP/err" &&
	expect_count gone 2
'

test_expect_success 'the default cache directory is created 0700, files 0600' '
	unset CACHEDO_CACHE &&
	umask 000 &&
	cachedo counted perms &&
	cachedo counted perms &&
	expect_count perms 1 &&
	expect_eq 700 "$(stat -c %a "$XDG_CACHE_HOME/cachedo")" "mode of the cache dir" &&
	upkeep_settled "$XDG_CACHE_HOME/cachedo/cache.db" &&
	expect_modes "$XDG_CACHE_HOME/cachedo"
'

test_expect_success 'an explicit cache directory is created 0700, files 0600' '
	umask 000 &&
	cachedo --cache "sqlite:$PWD/newdir/cache.db" counted perms2 &&
	cachedo --cache "sqlite:$PWD/newdir/cache.db" counted perms2 &&
	expect_count perms2 1 &&
	expect_eq 700 "$(stat -c %a newdir)" "mode of the cache dir" &&
	test -f newdir/cache.db &&
	upkeep_settled newdir/cache.db &&
	expect_modes newdir
'

for mode in 777 770 707 1777; do
	test_expect_success "a cache directory with mode $mode is refused" '
		mkdir unsafe$mode &&
		chmod $mode unsafe$mode &&
		expect_fail_open unsafe$mode --cache "sqlite:$PWD/unsafe$mode/cache.db" &&
		expect_eq "" "$(ls -A unsafe$mode)" "contents of the unsafe dir"
	'
done

test_expect_success 'the refusal shows the mode in octal and says what to do' '
	mkdir -m 700 shared private &&
	chmod 1777 shared &&
	chmod 0770 private &&
	cachedo --cache "sqlite:$PWD/shared/x.db" true 2>err &&
	expect_grep -F "'\''$PWD/shared'\'' is shared by all users (mode 1777)" err &&
	expect_grep -F "use a private subdirectory such as '\''$PWD/shared/cachedo-$(id -u)'\'' (created 0700)" err &&
	cachedo --cache "sqlite:$PWD/shared/cachedo-$(id -u)/x.db" true 2>err &&
	expect_lines 0 err &&
	cachedo --cache "sqlite:$PWD/private/x.db" true 2>err &&
	expect_grep -F "is writable by others (mode 0770; expected 0700)" err
'

test "$(id -u)" = 0 && test_set_prereq ROOT

test_expect_success ROOT 'a cache directory owned by another user is refused' '
	mkdir -m 700 theirs &&
	chown 65534 theirs &&
	expect_fail_open theirs --cache "sqlite:$PWD/theirs/cache.db" &&
	expect_eq "" "$(ls -A theirs)" "contents of the other user dir"
'

test_expect_success 'a cache directory that is a symlink is refused' '
	mkdir real &&
	chmod 700 real &&
	ln -s real link &&
	expect_fail_open symlink --cache "sqlite:$PWD/link/cache.db" &&
	expect_eq "" "$(ls -A real)" "contents of the symlinked dir"
'

test_expect_success 'a database file that is a symlink is refused' '
	mkdir -m 700 safe &&
	: >target.db &&
	ln -s "$PWD/target.db" safe/cache.db &&
	expect_fail_open dbsymlink --cache "sqlite:$PWD/safe/cache.db" &&
	test ! -s target.db
'

test_done
