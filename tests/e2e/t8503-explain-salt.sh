#!/bin/sh
# Digests that reveal nothing: what --explain shows of a value, and what the
# explain side files keep, are keyed hashes under the cache's own random
# salt (two caches differ, one cache agrees with itself); variables with
# secret-looking names show only "set". Checked against SHA-256 and the
# SipHash under the fixed key that earlier versions used.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 && test_set_prereq PYTHON3

value=hunter2-$$
export PLAIN_VAR="$value" GITHUB_TOKEN="$value" DB_PASSWORD="$value"

# unkeyed_found FILE...: any FILE holds an unkeyed digest of $value: its
# SHA-256 (bytes or hex, or the 16 hex digits --explain showed), or the
# SipHash-2-4 of 'e' and the value under the old fixed key.
cat >"$TMP/unkeyed.py" <<'EOF'
import hashlib, struct, sys

def rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & 0xffffffffffffffff

def siphash24(key, m):
    k0, k1 = struct.unpack("<QQ", key)
    v0, v1 = k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d
    v2, v3 = k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573
    def rnd(v0, v1, v2, v3):
        v0 = (v0 + v1) & 0xffffffffffffffff; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
        v2 = (v2 + v3) & 0xffffffffffffffff; v3 = rotl(v3, 16); v3 ^= v2
        v0 = (v0 + v3) & 0xffffffffffffffff; v3 = rotl(v3, 21); v3 ^= v0
        v2 = (v2 + v1) & 0xffffffffffffffff; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
        return v0, v1, v2, v3
    b = len(m) << 56
    full = len(m) - len(m) % 8
    for i in range(0, full, 8):
        mi = struct.unpack("<Q", m[i:i + 8])[0]
        v3 ^= mi
        v0, v1, v2, v3 = rnd(v0, v1, v2, v3)
        v0, v1, v2, v3 = rnd(v0, v1, v2, v3)
        v0 ^= mi
    for i, c in enumerate(m[full:]):
        b |= c << (8 * i)
    v3 ^= b
    v0, v1, v2, v3 = rnd(v0, v1, v2, v3)
    v0, v1, v2, v3 = rnd(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xff
    for _ in range(4):
        v0, v1, v2, v3 = rnd(v0, v1, v2, v3)
    return struct.pack("<Q", v0 ^ v1 ^ v2 ^ v3)

value = sys.argv[1].encode()
sha = hashlib.sha256(value).digest()
sip = siphash24(b"cachedo explain\0", b"e" + value)
# The SipHash test vector of the reference paper, so the code is known good.
assert siphash24(bytes(range(16)), bytes(range(15))).hex() == "e545be4961ca29a1"
needles = [sha, sha.hex().encode(), sha.hex()[:16].encode(), sip, sip.hex().encode()]
found = 0
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    for n in needles:
        if n in data:
            print("%s holds %s" % (path, n.hex() if len(n) <= 32 and not n.isascii() else n))
            found = 1
sys.exit(0 if found else 1)
EOF

test_expect_success '--explain shows salted digests, and only "set" for secret names' '
	cachedo counted salty >/dev/null &&
	cachedo --explain counted salty >explain &&
	expect_grep "^env  *PLAIN_VAR salted:[0-9a-f]\{16\}\$" explain &&
	expect_grep "^env  *GITHUB_TOKEN set\$" explain &&
	expect_grep "^env  *DB_PASSWORD set\$" explain &&
	expect_no_grep sha256 explain &&
	cachedo --explain counted salty >explain2 &&
	expect_cmp explain explain2
'

test_expect_success PYTHON3 'no unkeyed digest of a value in --explain or in any file of the cache' '
	cachedo --explain -v counted salty >explain &&
	PLAIN_VAR=other cachedo -v counted salty >/dev/null 2>err &&
	expect_grep "PLAIN_VAR" err &&
	cat explain err >shown &&
	if python3 "$TMP/unkeyed.py" "$value" shown $(find "$TMP" -type f ! -name unkeyed.py ! -name "count.*"); then
		exit 1
	fi &&
	# the check itself finds what it looks for
	printf %s "$value" | sha256sum | cut -c1-16 >probe &&
	python3 "$TMP/unkeyed.py" "$value" probe >/dev/null
'

test_expect_success 'two caches give different digests for one value' '
	cachedo -c "sqlite:$TMP/one.db" counted two >/dev/null &&
	cachedo -c "sqlite:$TMP/two.db" counted two >/dev/null &&
	cachedo -c "sqlite:$TMP/one.db" --explain counted two | grep PLAIN_VAR >d1 &&
	cachedo -c "sqlite:$TMP/two.db" --explain counted two | grep PLAIN_VAR >d2 &&
	cachedo -c "sqlite:$TMP/one.db" --explain counted two | grep PLAIN_VAR >d1again &&
	expect_cmp d1 d1again &&
	! cmp -s d1 d2
'

test_expect_success 'the salt is a private file next to the cache' '
	test -f "$TMP/one.db-salt" &&
	expect_eq "-rw-------" "$(ls -l "$TMP/one.db-salt" | cut -c1-10)" &&
	expect_eq 32 "$(wc -c <"$TMP/one.db-salt")"
'

test_expect_success 'a miss still says which variable changed, never how' '
	PLAIN_VAR=first cachedo counted changed >/dev/null &&
	PLAIN_VAR=second cachedo -v counted changed >/dev/null 2>err &&
	expect_grep "PLAIN_VAR: another value" err &&
	GITHUB_TOKEN=rotated cachedo -v counted changed >/dev/null 2>err &&
	expect_grep "GITHUB_TOKEN" err &&
	expect_no_grep rotated err
'

test_expect_success 'without a cache (--no-cache) values show only as set' '
	cachedo --no-cache --explain counted nocache >explain &&
	expect_grep "^env  *PLAIN_VAR set\$" explain
'

test_done
