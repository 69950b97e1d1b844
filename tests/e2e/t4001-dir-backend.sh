#!/bin/sh
# The dir: and mem: backends: one file per entry at ROOT/v1/ab/abcdef...,
# private modes, unsafe roots refused, failing open, corrupt files removed,
# --clear and --gc touching only cachedo's own files, crash safety.
# Runs with CACHEDO_TEST_CACHE=dir or =mem; each test uses its own root.
. "$(dirname "$0")/lib.sh"

case $test_backend in
dir | mem) ;;
*) skip_all "dir and mem only (CACHEDO_TEST_CACHE=dir or mem)" ;;
esac

# Tests that mount a tmpfs (a full disk, a read-only root) need root and a
# kernel that lets us mount; mounts left by a failed test go at exit.
umount_all () {
	test -f "$TMP/mounts" || return 0
	while read -r m; do umount "$m" 2>/dev/null; done <"$TMP/mounts"
}
trap 'umount_all; test_cleanup' EXIT
mkdir "$TMP/probe"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=64k tmpfs "$TMP/probe" 2>/dev/null; then
	umount "$TMP/probe"
	test_set_prereq MOUNT
fi
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	test_set_prereq CHOWN
fi
if command -v strace >/dev/null 2>&1 && strace -o /dev/null true 2>/dev/null; then
	test_set_prereq STRACE
fi

# use_root DIR: the cache root becomes DIR/cachedo (dir:DIR/cachedo, or
# mem: with XDG_RUNTIME_DIR=DIR); sets $root. DIR is created 0700.
use_root () {
	mkdir -p "$1" && chmod 700 "$1" || return 1
	root=$1/cachedo
	if [ "$test_backend" = dir ]; then
		CACHEDO_CACHE=dir:$root
	else
		CACHEDO_CACHE=mem:
		XDG_RUNTIME_DIR=$1
		export XDG_RUNTIME_DIR
	fi
	export CACHEDO_CACHE
}

# entry_file COMMAND...: the path of COMMAND's entry under $root.
entry_file () {
	test_key=$(cachedo --key "$@") || return 1
	echo "$root/v1/$(echo "$test_key" | cut -c 1-2)/$test_key"
}

# mount_tmpfs DIR OPTIONS: a private tmpfs at DIR, unmounted at exit.
mount_tmpfs () {
	mkdir -p "$1" && mount -t tmpfs -o "$2,mode=700" tmpfs "$1" || return 1
	echo "$1" >>"$TMP/mounts"
}


# no_entries: nothing but folders (and lock files) under $root.
no_entries () {
	find "$root" -type f ! -path "*/v1/locks/*" ! -name "cachedo-*" >files &&
	expect_lines 0 files
}

test_expect_success 'an entry is one file at v1/KEY[0:2]/KEY, 0600 in 0700 folders' '
	umask 000 &&
	use_root "$TMP/layout" &&
	cachedo counted layout >out &&
	cachedo counted layout >out &&
	expect_count layout 1 &&
	expect_eq "layout run 1" "$(cat out)" &&
	f=$(entry_file counted layout) &&
	test -f "$f" &&
	expect_eq 600 "$(stat -c %a "$f")" "mode of the entry" &&
	for d in "$root" "$root/v1" "${f%/*}"; do
		expect_eq 700 "$(stat -c %a "$d")" "mode of $d" || exit 1
	done &&
	expect_eq CDOE "$(head -c 4 "$f")" "the entry codec magic" &&
	expect_eq CDOD "$(tail -c 4 "$f")" "the footer magic" &&
	find "$root/v1" -type f ! -path "*/locks/*" >files &&
	expect_lines 1 files
'

test_expect_success 'dir: needs a path, mem: takes none' '
	expect_status 125 cachedo -c dir: true 2>err &&
	expect_grep "dir:PATH" err &&
	expect_status 125 cachedo -c mem:/x true 2>err &&
	expect_grep "mem:" err
'

if [ "$test_backend" = mem ]; then
	test_expect_success 'mem: lives in $XDG_RUNTIME_DIR/cachedo' '
		use_root "$TMP/run2" &&
		cachedo counted xdg &&
		test -f "$(entry_file counted xdg)"
	'

	test_expect_success 'mem: without $XDG_RUNTIME_DIR lives in /dev/shm/cachedo-UID' '
		test -d /dev/shm || exit 0 &&
		shm=/dev/shm/cachedo-$(id -u) &&
		existed=$(test -e "$shm" && echo 1 || :) &&
		scope=t4001-$$ &&
		rc=0 &&
		(
			env -u XDG_RUNTIME_DIR cachedo -c mem: --scope $scope counted shm &&
			k=$(env -u XDG_RUNTIME_DIR cachedo --scope $scope --key counted shm) &&
			test -f "$shm/v1/$(echo "$k" | cut -c 1-2)/$k" &&
			expect_eq 700 "$(stat -c %a "$shm")" &&
			env -u XDG_RUNTIME_DIR cachedo -c mem: --scope $scope --forget counted shm &&
			test ! -e "$shm/v1/$(echo "$k" | cut -c 1-2)/$k"
		) || rc=1
		if [ -z "$existed" ]; then rm -rf "$shm"; fi
		exit $rc
	'
fi

for mode in 777 770 707 1777; do
	test_expect_success "a root with mode $mode is refused" '
		use_root "$TMP/m$mode" &&
		mkdir "$root" &&
		chmod $mode "$root" &&
		expect_fail_open mode$mode &&
		expect_eq "" "$(ls -A "$root")" "contents of the root"
	'
done

test_expect_success 'a root that is a symlink is refused' '
	use_root "$TMP/sym" &&
	mkdir -m 700 "$TMP/sym/real" &&
	ln -s real "$root" &&
	expect_fail_open symlink &&
	expect_eq "" "$(ls -A "$TMP/sym/real")" "contents of the link target"
'

test_expect_success CHOWN 'a root owned by another user is refused' '
	use_root "$TMP/owner" &&
	mkdir -m 700 "$root" &&
	chown nobody "$root" &&
	expect_fail_open owner &&
	expect_eq "" "$(ls -A "$root")" "contents of the root"
'

test_expect_success 'a root that is a regular file: the command runs' '
	use_root "$TMP/file" &&
	: >"$root" &&
	expect_fail_open file &&
	test -f "$root" &&
	test ! -s "$root"
'

test_expect_success MOUNT 'a read-only root: the command runs' '
	use_root "$TMP/ro" &&
	mount_tmpfs "$TMP/ro" size=1m &&
	mkdir -m 700 "$root" &&
	mount -o remount,ro "$TMP/ro" &&
	expect_fail_open ro &&
	umount "$TMP/ro"
'

test_expect_success MOUNT 'a full disk: output in full, status kept, one warning, nothing left' '
	use_root "$TMP/full" &&
	mount_tmpfs "$TMP/full" size=512k &&
	for kib in 3072 700; do
		expect_status 3 cachedo counted full$kib \
			sh -c "head -c ${kib}k /dev/zero; echo err >&2; exit 3" >out 2>err &&
		expect_eq $((kib * 1024)) "$(wc -c <out)" "bytes of output" &&
		expect_lines 2 err &&
		expect_grep "^cachedo: warning: " err &&
		no_entries || exit 1
	done &&
	expect_status 3 cachedo counted full700 \
		sh -c "head -c 700k /dev/zero; echo err >&2; exit 3" >out 2>err &&
	expect_count full700 2 &&
	cachedo counted small && cachedo counted small &&
	expect_count small 1 &&
	upkeep_settled "$root/cachedo" &&
	umount "$TMP/full"
'

test_expect_success 'a root deleted while the command runs: it keeps its output and status' '
	use_root "$TMP/gone" &&
	cachedo true &&
	test -d "$root" &&
	upkeep_settled "$root/cachedo" &&
	expect_status 3 cachedo counted gone \
		sh -c "rm -rf \"$root\"; echo out; echo err >&2; exit 3" >out 2>err &&
	expect_eq out "$(cat out)" &&
	expect_lines 2 err &&
	expect_grep -x err err &&
	expect_grep "^cachedo: warning: " err &&
	cachedo counted again && cachedo counted again &&
	expect_count again 1
'

# corrupt NAME HOW: stores `counted NAME`, damages its file with the shell
# code HOW (on "$f"), then checks the next run misses and removes it.
corrupt () {
	cachedo counted "$1" >out &&
	f=$(entry_file counted "$1") &&
	test -f "$f" &&
	eval "$2" &&
	cachedo --max-output 1 counted "$1" >out &&
	expect_eq "$1 run 2" "$(cat out)" &&
	expect_count "$1" 2 &&
	if [ -e "$f" ] || [ -L "$f" ]; then
		echo "the damaged file is still there" >&2
		return 1
	fi &&
	cachedo counted "$1" >out &&
	cachedo counted "$1" >out &&
	expect_count "$1" 3
}

# flip_bit FILE OFFSET: inverts the low bit of the byte at OFFSET (always a
# change, unlike writing a fixed byte that may already be there).
flip_bit () {
	python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1)[0]
    f.seek(int(sys.argv[2])); f.write(bytes([b ^ 1]))' "$1" "$2"
}

test_expect_success 'a corrupt entry (one byte changed) is a miss and is removed' '
	use_root "$TMP/corrupt" &&
	corrupt flip "flip_bit \"\$f\" 40"
'

for size in half 60 20 0; do
	test_expect_success "an entry truncated to $size bytes is a miss and is removed" '
		use_root "$TMP/trunc$size" &&
		if [ $size = half ]; then
			corrupt trunc$size "truncate -s \$((\$(wc -c <\"\$f\") / 2)) \"\$f\""
		else
			corrupt trunc$size "truncate -s $size \"\$f\""
		fi
	'
done

test_expect_success 'an entry with bytes appended is a miss and is removed' '
	use_root "$TMP/append" &&
	corrupt append "printf junk >>\"\$f\""
'

test_expect_success 'a symlink in place of an entry is not followed, and is removed' '
	use_root "$TMP/link" &&
	corrupt entrylink "cp \"\$f\" \"$TMP/copy\" && rm \"\$f\" && ln -s \"$TMP/copy\" \"\$f\"" &&
	test -f "$TMP/copy"
'

test_expect_success 'a large corrupt entry is a miss and is removed' '
	use_root "$TMP/bigc" &&
	cachedo counted bigc head -c 1048576 /dev/zero >out &&
	f=$(entry_file counted bigc head -c 1048576 /dev/zero) &&
	printf X | dd of="$f" bs=1 seek=500000 conv=notrunc 2>/dev/null &&
	cachedo --max-output 1 counted bigc head -c 1048576 /dev/zero | cksum >sum &&
	head -c 1048576 /dev/zero | cksum >expect &&
	expect_cmp expect sum &&
	expect_count bigc 2 &&
	test ! -e "$f"
'

test_expect_success '--clear removes the entries and leaves foreign files alone' '
	use_root "$TMP/clear" &&
	cachedo counted c1 && cachedo counted c2 &&
	f=$(entry_file counted c1) &&
	d=${f%/*} &&
	name=${f##*/} &&
	if [ "${d##*/}" = 00 ]; then fake=11${name#??}; else fake=00${name#??}; fi &&
	echo mine >"$root/notes" &&
	echo mine >"$root/v1/notes" &&
	echo mine >"$d/notes" &&
	echo mine >"$d/.tmp-x" &&
	mkdir -p "$root/v1/zz" &&
	echo mine >"$root/v1/zz/$fake" &&
	echo mine >"$d/$fake" &&
	expect_status 0 cachedo --clear &&
	test ! -e "$f" &&
	for x in "$root/notes" "$root/v1/notes" "$d/notes" "$d/.tmp-x" \
		"$root/v1/zz/$fake" "$d/$fake"; do
		expect_eq mine "$(cat "$x")" "$x" || exit 1
	done &&
	cachedo counted c1 && cachedo counted c2 &&
	expect_count c1 2 && expect_count c2 2
'

test_expect_success '--clear --scope removes only that scope' '
	use_root "$TMP/scope" &&
	cachedo --scope a counted sa && cachedo --scope b counted sb &&
	cachedo counted snone &&
	expect_status 0 cachedo --scope a --clear &&
	cachedo --scope a counted sa && cachedo --scope b counted sb &&
	cachedo counted snone &&
	expect_count sa 2 && expect_count sb 1 && expect_count snone 1
'

test_expect_success '--gc removes expired entries and old temp files only' '
	use_root "$TMP/gc" &&
	cachedo --ttl 1ms counted old &&
	cachedo --ttl 1h counted fresh &&
	d=${root}/v1/00 &&
	mkdir -p "$d" &&
	for t in .tmp-0123456789abcdef .tmp-fedcba9876543210 .tmp-notmine; do
		echo partial >"$d/$t" && touch -d "2 hours ago" "$d/$t" || exit 1
	done &&
	echo partial >"$d/.tmp-00000000000000aa" &&
	echo mine >"$root/v1/notes" &&
	touch -d "2 hours ago" "$root/v1/notes" &&
	sleep 0.01 &&
	cachedo --gc >out &&
	expect_grep -x "removed [01] expired entr[a-z]*; evicted none (no --max-size)" out &&
	test ! -e "$(entry_file counted old)" &&
	test -f "$(entry_file counted fresh)" &&
	test ! -e "$d/.tmp-0123456789abcdef" &&
	test ! -e "$d/.tmp-fedcba9876543210" &&
	test -f "$d/.tmp-notmine" &&
	test -f "$d/.tmp-00000000000000aa" &&
	test -f "$root/v1/notes" &&
	cachedo --ttl 1h counted fresh &&
	expect_count fresh 1
'

test_expect_success '--list, --stats and --forget' '
	use_root "$TMP/admin" &&
	cachedo counted l1 >/dev/null &&
	cachedo --scope x counted l2 echo arg >/dev/null &&
	cachedo --list >out &&
	expect_lines 3 out &&
	expect_grep "counted l1\$" out &&
	expect_grep "counted l2 echo arg\$" out &&
	cachedo --stats --json >out &&
	size=$(($(wc -c <"$(entry_file counted l1)") - 16 + $(wc -c <"$(entry_file --scope x counted l2 echo arg)") - 17)) &&
	expect_grep -F "\"entries\":2,\"bytes\":$size" out &&
	expect_status 0 cachedo --forget counted l1 &&
	test ! -e "$(entry_file counted l1)" &&
	cachedo --stats --json >out &&
	expect_grep -F "\"entries\":1," out
'

test_expect_success 'a reader never sees an entry half replaced' '
	use_root "$TMP/swap" &&
	gen="yes q | head -c 3000000" &&
	sh -c "$gen" | cksum >expect &&
	cachedo sh -c "$gen" >/dev/null &&
	{
		for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
			cachedo --refresh sh -c "$gen" >/dev/null
		done &
	} &&
	writer=$! &&
	i=0 &&
	while [ $i -lt 30 ]; do
		cachedo sh -c "$gen" | cksum >sum &&
		expect_cmp expect sum || { kill $writer; exit 1; }
		i=$((i + 1))
	done &&
	wait $writer
'

# A put that replaces an entry swaps the new file in (renameat2
# RENAME_EXCHANGE) and removes the old one under the temp name, rather than
# renaming over it: ext4 writes a file renamed over another at once. One
# file is left, the new one. (The leak check of a sanitizer build cannot run
# under ptrace; the variable that turns it off is in the key, so all three
# runs have it.)
test_expect_success STRACE 'a refresh swaps its entry in and leaves one file' '
	use_root "$TMP/exchange" &&
	(
		ASAN_OPTIONS=detect_leaks=0 && export ASAN_OPTIONS &&
		cachedo counted swapped >/dev/null &&
		f=$(entry_file counted swapped) &&
		strace -s 256 -o swap.trace -e trace=rename,renameat,renameat2 \
			cachedo --refresh counted swapped >/dev/null &&
		grep "RENAME_EXCHANGE) = 0" swap.trace >swaps &&
		expect_grep "${f##*/}" swaps &&
		find "$root/v1" -type f ! -path "*/locks/*" >files &&
		expect_lines 1 files &&
		cachedo counted swapped >out &&
		expect_count swapped 2 &&
		expect_eq "swapped run 2" "$(cat out)"
	)
'

# SIGKILL while a large entry is being stored (the kills are spread over
# the end of the run, where the store happens): later runs never serve a
# partial entry, and --gc removes the temp files of the killed writers
# once they are an hour old.
MiB=1048576
gen="yes k | head -c $((48 * MiB))"
sh -c "$gen" | cksum >"$TMP/expect"
use_root "$TMP/crash"
start=$(date +%s%N)
cachedo --scope calibrate sh -c "$gen" >/dev/null 2>&1
run_ms=$((($(date +%s%N) - start) / 1000000))
echo "# one run of 48 MiB takes ${run_ms} ms"

for i in 0 1 2 3 4 5 6 7 8 9 10 11; do
	delay_ms=$((run_ms * (60 + 5 * i) / 100))
	test_expect_success "SIGKILL after ${delay_ms} ms: no partial entry is served" '
		spawn cachedo counted crash$i sh -c "$gen" >/dev/null 2>&1 &&
		pid=$! &&
		sleep $((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000))) &&
		{ kill -KILL $pid 2>/dev/null || :; } &&
		{ wait $pid || :; } &&
		timeout 60 cachedo counted crash$i sh -c "$gen" | cksum >sum &&
		expect_cmp "$TMP/expect" sum &&
		runs=$(count crash$i) &&
		timeout 60 cachedo counted crash$i sh -c "$gen" | cksum >sum &&
		expect_cmp "$TMP/expect" sum &&
		expect_count crash$i $runs
	'
done

test_expect_success '--gc removes the temp files killed writers left, once an hour old' '
	find "$root/v1" -name ".tmp-*" >temps &&
	echo "# temp files left by the kills: $(wc -l <temps)" >&2 &&
	f=$(entry_file counted crash0 sh -c "$gen") &&
	head -c 100000 "$f" >"${f%/*}/.tmp-0000111122223333" &&
	find "$root/v1" -name ".tmp-*" -exec touch -d "2 hours ago" {} + &&
	cachedo --gc >/dev/null &&
	find "$root/v1" -name ".tmp-*" >temps &&
	expect_lines 0 temps &&
	cachedo counted crash0 sh -c "$gen" | cksum >sum &&
	expect_cmp "$TMP/expect" sum
'

# A writer killed between swapping its file in and removing the entry it
# swapped out leaves that entry under its temp name, dated as an entry is
# (mtime = the expiry, in the future); no writer holds it: --gc removes it
# at once, and the entry in place stays.
test_expect_success '--gc removes an entry a killed writer swapped out' '
	f=$(entry_file counted crash0 sh -c "$gen") &&
	cp -p "$f" "${f%/*}/.tmp-4444555566667777" &&
	test -n "$(find "${f%/*}/.tmp-4444555566667777" -newermt "1 second")" &&
	cachedo --gc >/dev/null &&
	find "$root/v1" -name ".tmp-*" >temps &&
	expect_lines 0 temps &&
	cachedo counted crash0 sh -c "$gen" | cksum >sum &&
	expect_cmp "$TMP/expect" sum
'

test_done
