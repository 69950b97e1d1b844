#!/bin/sh
# Read-only clients (--read-only, CACHEDO_READ_ONLY, config read-only):
# hits are served, misses run uncached, nothing is written, removed, locked
# or counted; the commands that change a cache are an error. Against Redis
# with a user an ACL limits to reading cachedo:* keys: zero warnings and
# every key and value unchanged.
. "$(dirname "$0")/lib.sh"

# snapshot: every stored byte of the cache, as one comparable file.
snapshot () {
	if [ "$test_backend" = redis ]; then
		redis_cli --scan | sort | while read -r k; do
			printf '%s ' "$k"
			redis_cli --raw DUMP "$k" | od -An -tx1 | tr -d ' \n'
			echo
		done
		redis_cli DBSIZE
	else
		# Not SQLite's -shm: an index of the WAL that any reader rebuilds
		# when it is the first to open the database.
		for f in $(store_files | grep -v -- "-shm\$" | sort); do
			printf '%s ' "$f"
			od -An -tx1 "$f" | tr -d ' \n'
			echo
		done
	fi
}

# settled: takes snapshots until two in a row agree (the background upkeep
# after a stored miss may still be writing), leaving the last in ./before.
settled () {
	snapshot >before.1 &&
	wait_until settled_again
}
settled_again () {
	sleep 0.2
	snapshot >before
	cmp -s before before.1 && return 0
	mv before before.1
	return 1
}

test_expect_success 'a hit is served from a read-only cache, with no message' '
	cachedo counted hit >out1 &&
	cachedo --read-only counted hit >out2 2>err &&
	expect_count hit 1 &&
	expect_cmp out1 out2 &&
	expect_lines 0 err &&
	CACHEDO_READ_ONLY=1 cachedo -v counted hit >out3 2>err &&
	expect_cmp out1 out3 &&
	expect_grep "^cachedo: hit" err
'

test_expect_success 'a miss runs uncached and stores nothing; -v says why' '
	test "$test_backend" != mem || rm -rf "$XDG_RUNTIME_DIR/cachedo"/*-usage
	settled &&
	cachedo --read-only counted miss sh -c "echo out; exit 3" >out 2>err ||
		test $? = 3 &&
	expect_eq out "$(cat out)" &&
	expect_lines 0 err &&
	cachedo --read-only -v counted miss sh -c "echo out; exit 3" >out 2>err ||
		test $? = 3 &&
	expect_grep "^cachedo: miss, not stored: the cache is read-only" err &&
	expect_count miss 2 &&
	snapshot >after &&
	expect_cmp before after
'

test_expect_success 'read-only from the config file too' '
	write_config <<-EOF &&
	read-only = yes
	EOF
	cachedo counted conf >/dev/null &&
	cachedo counted conf >/dev/null &&
	expect_count conf 2 &&
	rm "$XDG_CONFIG_HOME/cachedo/config"
'

test_expect_success '--clear, --forget, --gc and --zero-stats are an error (125)' '
	for mode in --clear --gc --zero-stats; do
		expect_status 125 cachedo --read-only $mode 2>err &&
		expect_lines 1 err &&
		expect_grep -- "$mode cannot change a read-only cache" err || exit 1
	done &&
	expect_status 125 env CACHEDO_READ_ONLY=1 cachedo --forget counted hit 2>err &&
	expect_grep -- "--forget cannot change a read-only cache" err &&
	cachedo counted hit >/dev/null &&
	expect_count hit 1
'

test_expect_success 'a stale entry is served without a refresh' '
	cachedo --ttl 100ms --stale 1h counted stale >/dev/null &&
	sleep 0.2 &&
	cachedo --read-only --ttl 100ms --stale 1h -v counted stale >out 2>err &&
	expect_grep "stale" err &&
	sleep 0.3 &&
	expect_count stale 1
'

test_expect_success '--list and --stats read a read-only cache' '
	cachedo --read-only --list >list &&
	expect_grep "counted hit" list &&
	cachedo --read-only --stats >/dev/null
'

if [ "$test_backend" = redis ]; then
	# A server of its own, where a user may only read cachedo:* keys.
	redis_start "$TMP/acl" || { echo "Bail out! cannot start redis-server"; exit 1; }
	redis_cli ACL SETUSER reader on ">reader-pw" resetkeys "%R~cachedo:*" \
		resetchannels -@all +@read +@connection >/dev/null
	test_set_prereq ACL
fi
acl_url=redis://reader:reader-pw@127.0.0.1:$REDIS_PORT
rw_url=redis://127.0.0.1:$REDIS_PORT

test_expect_success ACL 'the ACL user can read and nothing else' '
	test "$(redis-cli -p $REDIS_PORT --user reader --pass reader-pw --no-auth-warning SET cachedo:x 1 2>&1)" != OK
'

test_expect_success ACL 'an ACL read-only user: hits served, misses uncached, no warning, nothing changed' '
	cachedo -c "$rw_url" counted shared >out1 &&
	cachedo -c "$rw_url" --ttl 100ms counted expired >/dev/null &&
	cachedo -c "$rw_url" --stats --json >/dev/null &&
	sleep 0.2 &&
	settled &&
	cachedo -c "$acl_url" --read-only counted shared >out2 2>err &&
	expect_cmp out1 out2 &&
	expect_count shared 1 &&
	cachedo -c "$acl_url" --read-only counted new >out 2>>err &&
	cachedo -c "$acl_url" --read-only counted new >out 2>>err &&
	expect_count new 2 &&
	cachedo -c "$acl_url" --read-only --ttl 100ms counted expired >out 2>>err &&
	expect_count expired 2 &&
	cachedo -c "$acl_url" --read-only --ttl 1h --stale 1h counted expired >out 2>>err &&
	cachedo -c "$acl_url" --read-only --list >/dev/null 2>>err &&
	cachedo -c "$acl_url" --read-only --stats >/dev/null 2>>err &&
	expect_lines 0 err &&
	snapshot >after &&
	expect_cmp before after
'

test_expect_success ACL 'without --read-only the same user gets a warning and still its output' '
	cachedo -c "$acl_url" counted denied >out 2>err &&
	expect_eq "denied run 1" "$(cat out)" &&
	expect_grep "^cachedo: warning" err
'

test_done
