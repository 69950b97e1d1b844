#!/bin/sh
# --gc removes at once what writers that died left behind (dir: temp
# files, sqlite: pending blobs, redis: temp keys), and leaves alone what a
# live writer is still writing: each backend tells them apart by a lock
# the writer holds (flock of the temp file, flock of PATH-writers, its
# connection's CLIENT ID).
. "$(dirname "$0")/lib.sh"

case $test_backend in
sqlite | dir | mem | redis) ;;
*) skip_all "sqlite, dir, mem and redis only" ;;
esac
command -v flock >/dev/null 2>&1 && test_set_prereq FLOCK

hex16=0123456789abcdef
key=$(printf '%064d' 0 | tr 0 a)

case $test_backend in
dir | mem)
	temp=$STORE_PATH/v1/aa/.tmp-$hex16
	# leftover: a temp file no one holds, a few seconds old
	leftover () {
		mkdir -p "$STORE_PATH/v1/aa" && echo partial >"$temp" &&
		touch -d '-5 seconds' "$temp"
	}
	left () { test -e "$temp"; }
	# live CMD...: runs CMD while a writer holds the temp file
	live () { flock -x "$temp" "$@"; }
	;;
sqlite)
	# creates the database; the upkeep that first miss starts holds
	# PATH-writers for a moment, after a quiet wait: --gc below must not
	# meet it there (it would take the leftover for a live writer's)
	cachedo true && upkeep_settled "$STORE_PATH"
	leftover () {
		python3 -c 'import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT OR REPLACE INTO pending(blob, started) VALUES(7, ?)", (int(time.time() * 1000),))
db.commit()
big = sqlite3.connect(sys.argv[1] + "-big")
big.execute("CREATE TABLE IF NOT EXISTS chunk(id INTEGER PRIMARY KEY, bytes BLOB)")
big.execute("INSERT OR REPLACE INTO chunk VALUES(?, ?)", (7 << 16, b"partial"))
big.commit()' "$STORE_PATH"
	}
	left () {
		test "$(python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
big = sqlite3.connect(sys.argv[1] + "-big")
print(db.execute("SELECT count(*) FROM pending").fetchone()[0] +
      big.execute("SELECT count(*) FROM chunk").fetchone()[0])' "$STORE_PATH")" != 0
	}
	live () { flock -s "$STORE_PATH-writers" "$@"; }
	;;
redis)
	temp=cachedo:v1::$key:tmp:$hex16
	# A client id no connection has: the writer is gone.
	leftover () {
		redis_cli SET "$temp:999999" partial PX 60000 >/dev/null
	}
	left () { test "$(redis_cli EXISTS "$temp:999999")" = 1; }
	;;
esac

test_expect_success 'a dead writer'"'"'s leftover goes with --gc at once' '
	leftover && left &&
	expect_status 0 cachedo --gc >out &&
	! left
'

if [ "$test_backend" = redis ]; then
	subscribed () { redis_cli CLIENT LIST | grep -q "cmd=subscribe"; }
	test_expect_success 'a live writer'"'"'s temp key stays' '
		# A connection that lives while --gc runs holds the key.
		redis-cli -s "$REDIS_SOCK" SUBSCRIBE t3005 >/dev/null &
		sub=$! &&
		wait_until subscribed &&
		id=$(redis_cli CLIENT LIST | sed -n "s/^id=\([0-9]*\) .*cmd=subscribe.*/\1/p") &&
		test -n "$id" &&
		redis_cli SET "$temp:$id" partial PX 60000 >/dev/null &&
		expect_status 0 cachedo --gc >out &&
		expect_eq 1 "$(redis_cli EXISTS "$temp:$id")" &&
		kill $sub && wait $sub || : &&
		wait_until test -z "$(redis_cli CLIENT LIST ID $id)" &&
		expect_status 0 cachedo --gc >out &&
		expect_eq 0 "$(redis_cli EXISTS "$temp:$id")"
	'
else
	test_expect_success FLOCK 'a live writer'"'"'s leftover stays' '
		leftover &&
		live cachedo --gc >out &&
		left &&
		expect_status 0 cachedo --gc >out &&
		! left
	'
fi

test_done
