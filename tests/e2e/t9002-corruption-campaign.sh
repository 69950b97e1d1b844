#!/bin/sh
# Corruption campaign: CAMPAIGN_DAMAGES (40) random damages per backend to
# its files or keys (bit flips, zero runs, truncation, junk, header flips,
# swapped files; for Redis wrong types, flipped bits, truncated, junk and
# swapped values), each followed by a checked run. No wrong answer is ever
# served, the command's own status always comes back, and the cache is
# usable again afterwards (a store, then a hit), also after --clear (every
# fourth damage). Knobs and the seed: campaign.sh.
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/campaign.sh"

damages=${CAMPAIGN_DAMAGES:-40}
echo "# corruption campaign [$test_backend]: seed $campaign_seed (CAMPAIGN_SEED=$campaign_seed replays), $damages damages"

SMALL=1000 MEDIUM=300000
size_of () {
	case $1 in 2?) echo $MEDIUM ;; *) echo $SMALL ;; esac
}
ids="10 11 12 13 20 21"

# damage_files SEED: one damage to the backend's local files (data files
# first, then -- and side files), told on stdout.
damage_files () {
	case $test_backend in
	sqlite)
		python3 "$TEST_DIR/damage.py" "$1" "$STORE_PATH" "$STORE_PATH-big" \
			$(find "$STORE_PATH-blobs" -type f 2>/dev/null) \
			"$STORE_PATH-wal" "$STORE_PATH-big-wal" -- "$STORE_PATH-shm" \
			"$STORE_PATH-big-shm" "$STORE_PATH-usage" "$STORE_PATH-stats" \
			"$STORE_PATH-writers" "$STORE_PATH-verified" \
			$(find "$STORE_PATH-explain" -type f 2>/dev/null) ;;
	dir | mem)
		python3 "$TEST_DIR/damage.py" "$1" $(find "$STORE_PATH/v1" -type f ! -path '*/locks/*') \
			-- $(find "$STORE_PATH" -type f ! -path '*/v1/*'; find "$STORE_PATH/v1/locks" -type f) ;;
	*)
		python3 "$TEST_DIR/damage.py" "$1" $(store_files) ;;
	esac
}

# Lua for one damage to a Redis key: KEYS[1] the key, ARGV[1] a number,
# ARGV[2] the kind, ARGV[3] junk. A key that is not a string becomes one.
redis_lua='
local k, n, kind = KEYS[1], tonumber(ARGV[1]), ARGV[2]
if redis.call("TYPE", k)["ok"] ~= "string" then
  redis.call("DEL", k) redis.call("SET", k, ARGV[3]) return "not a string: now junk"
end
local len = redis.call("STRLEN", k)
if len == 0 then redis.call("SET", k, ARGV[3]) return "empty: now junk" end
if kind == "flip" then
  local off = n % (len * 8)
  redis.call("SETBIT", k, off, 1 - redis.call("GETBIT", k, off))
  return "bit " .. off .. " flipped"
elseif kind == "zeros" then
  local off = n % len
  redis.call("SETRANGE", k, off, string.rep("\0", 1 + n % 4096))
  return (1 + n % 4096) .. " zero bytes at " .. off
elseif kind == "truncate" then
  local keep = n % len
  redis.call("SET", k, string.sub(redis.call("GET", k), 1, keep), "KEEPTTL")
  return "truncated to " .. keep .. " of " .. len
else
  local off = n % len
  redis.call("SETRANGE", k, off, ARGV[3])
  return #ARGV[3] .. " junk bytes at " .. off
end'

# damage_redis: one damage to a random key of cachedo's, told on stdout.
damage_redis () {
	redis_cli --scan --pattern 'cachedo:*' | sort >"$TMP/keys"
	nkeys=$(($(wc -l <"$TMP/keys")))
	test "$nkeys" -gt 0 || { echo "no keys"; return 0; }
	rand "$nkeys"; key=$(sed -n "$((r + 1))p" "$TMP/keys")
	rand 1000000; n=$r
	rand 8; junk=$(gen $n 0 2>/dev/null; printf 'junk%d' $n)
	case $r in
	0 | 1)
		rand 4
		redis_cli DEL "$key" >/dev/null
		case $r in
		0) redis_cli RPUSH "$key" "$junk" >/dev/null; echo "$key: now a list" ;;
		1) redis_cli HSET "$key" f "$junk" >/dev/null; echo "$key: now a hash" ;;
		2) redis_cli SADD "$key" "$junk" >/dev/null; echo "$key: now a set" ;;
		3) redis_cli ZADD "$key" 1 "$junk" >/dev/null; echo "$key: now a sorted set" ;;
		esac ;;
	2)
		rand "$nkeys"; other=$(sed -n "$((r + 1))p" "$TMP/keys")
		if [ "$other" != "$key" ]; then
			redis_cli RENAME "$key" "$key.swap" >/dev/null
			redis_cli RENAME "$other" "$key" >/dev/null
			redis_cli RENAME "$key.swap" "$other" >/dev/null
		fi
		echo "$key and $other swapped" ;;
	*)
		set -- flip zeros truncate junk junk
		shift $((r - 3))
		echo "$key: $(redis_cli EVAL "$redis_lua" 1 "$key" $n "$1" "$junk")" ;;
	esac
}

run_quiet () { "$CACHEDO" --ttl 1h "$@" >/dev/null 2>&1; }

for id in $ids; do run_quiet gen $id "$(size_of $id)"; done
unusable=0 clear_failed=0 damaged_runs=0 i=0
while [ $i -lt "$damages" ]; do
	i=$((i + 1))
	# Keep entries of each kind there to damage.
	rand 6; set -- $ids; shift $r; id=$1
	check_run $id "$(size_of $id)"
	rand 2147483647
	if [ "$test_backend" = redis ]; then
		what=$(damage_redis)
	else
		what=$(damage_files $r)
	fi
	echo "# damage $i: $what"
	# The checked run: an entry that may be damaged, exact or run again.
	w=$warned
	rand 6; set -- $ids; shift $r; id=$1
	check_run $id "$(size_of $id)"
	if [ $((i % 4)) = 0 ]; then
		if ! "$CACHEDO" --clear >"$TMP/clear.out" 2>&1; then
			clear_failed=$((clear_failed + 1))
			{ echo "--clear failed after damage $i ($what):"; cat "$TMP/clear.out"; } >>"$TMP/failures"
		fi
	fi
	# Usable again: a new command is stored, then served.
	s=$served
	check_run $((1000 + i)) $SMALL
	cp "$TMP/check.err" "$TMP/store.err"
	check_run $((1000 + i)) $SMALL
	if [ $served = $s ]; then
		unusable=$((unusable + 1))
		{
			echo "not usable after damage $i ($what):"
			sed 's/^/  store: /' "$TMP/store.err"
			sed 's/^/  again: /' "$TMP/check.err"
		} >>"$TMP/failures"
	fi
	test $warned = $w || damaged_runs=$((damaged_runs + 1))
done

echo "# corruption campaign [$test_backend]: seed $campaign_seed: $damages damages tried, $checked checked runs ($served served from the cache, $warned with a warning), $wrong wrong answers, $crashes crashes, $hangs hangs, $unusable times not usable afterwards, $clear_failed failed --clear"

test_expect_success "$damages damages: no wrong answer, the command's own status ($checked checked runs)" '
	campaign_failures &&
	expect_eq 0 $wrong "wrong answers" &&
	expect_eq 0 $crashes crashes &&
	expect_eq 0 $hangs hangs
'

test_expect_success 'the cache is usable again after each damage, also after --clear' '
	campaign_failures &&
	expect_eq 0 $unusable "times not usable" &&
	expect_eq 0 $clear_failed "failed --clear"
'

test_done
