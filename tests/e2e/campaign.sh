# campaign.sh: what the crash and corruption campaigns (t9*.sh) share,
# sourced after lib.sh.
#
# Knobs (environment; `make test CAMPAIGN_SEED=123` passes them too):
#   CAMPAIGN_SEED      the random seed (default fixed, printed at the start;
#                      "random" picks one). The same seed replays the same
#                      choices; kill timing still depends on the machine.
#   CAMPAIGN_KILLS     kills per backend in the crash campaign (default 60)
#   CAMPAIGN_LARGE     of those, how many hit a 50 MB store (default 3)
#   CAMPAIGN_DAMAGES   damages per backend in the corruption campaign (40)

campaign_seed=${CAMPAIGN_SEED:-20261204}
if [ "$campaign_seed" = random ]; then
	campaign_seed=$(($(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % 2147483647))
fi
case $campaign_seed in
'' | *[!0-9]*) echo "Bail out! CAMPAIGN_SEED '$campaign_seed': expected a number or 'random'"; exit 1 ;;
esac
rng_state=$campaign_seed

# rand N: sets $r to a number in [0, N), from the seeded generator (call it
# in the campaign's own shell, not in $(...), or the state is lost).
rand () {
	rng_state=$(((rng_state * 1103515245 + 12345) % 2147483648))
	r=$(((rng_state / 65536) % $1))
}

# gen ID SIZE: SIZE bytes on stdout that depend on ID, one line on stderr
# before and one after, exit status ID % 3.
cat >"$TMP/bin/gen" <<'EOF'
#!/bin/sh
echo "gen $1 starts" >&2
seq -f "$1 %.0f abcdefghijklmnopqrstuvwxyz" 1 $(($2 / 30 + 1)) | head -c "$2"
echo "gen $1 ends" >&2
exit $(($1 % 3))
EOF
chmod 755 "$TMP/bin/gen"

# expect_gen ID SIZE: the digests of gen's stdout and stderr and its status
# into $TMP/expect.ID (computed once).
expect_gen () {
	test -f "$TMP/expect.$1" && return 0
	gen "$1" "$2" 2>"$TMP/expect.$1.err" | sha256sum >"$TMP/expect.$1.out"
	st=$(gen "$1" 0 >/dev/null 2>&1; echo $?)
	{
		cat "$TMP/expect.$1.out"
		sha256sum <"$TMP/expect.$1.err"
		echo "$st"
	} >"$TMP/expect.$1"
}

# check_run ID SIZE [CACHEDO-OPTION]...: runs gen through cachedo (with -v)
# and compares stdout, the command's stderr and the status with a plain
# run. Counts into checked, served (a hit), wrong, crashes, hangs; a
# failure is described in $TMP/failures. Leaves cachedo's stderr in
# $TMP/check.err.
checked=0 served=0 wrong=0 crashes=0 hangs=0 warned=0
check_run () {
	ck_id=$1 ck_size=$2
	shift 2
	expect_gen "$ck_id" "$ck_size"
	ck_st=$({
		timeout -s KILL 300 "$CACHEDO" -v --ttl 1h "$@" gen "$ck_id" "$ck_size" 2>"$TMP/check.err"
		echo $? >"$TMP/check.status"
	} | sha256sum)
	ck_status=$(cat "$TMP/check.status")
	checked=$((checked + 1))
	grep -v '^cachedo: ' "$TMP/check.err" | sha256sum >"$TMP/check.errsum"
	{
		echo "$ck_st"
		cat "$TMP/check.errsum"
		echo "$ck_status"
	} >"$TMP/check.got"
	if grep -q '^cachedo: hit\|^cachedo: stale' "$TMP/check.err"; then
		served=$((served + 1))
	fi
	if grep -q '^cachedo: warning' "$TMP/check.err"; then
		warned=$((warned + 1))
	fi
	if [ "$ck_status" = 137 ]; then
		hangs=$((hangs + 1))
		echo "hang: gen $ck_id $ck_size $*" >>"$TMP/failures"
	elif [ "$ck_status" -gt 128 ] || grep -q 'Sanitizer\|runtime error' "$TMP/check.err"; then
		crashes=$((crashes + 1))
		{ echo "crash (status $ck_status): gen $ck_id $ck_size $*"; cat "$TMP/check.err"; } >>"$TMP/failures"
	elif ! cmp -s "$TMP/expect.$ck_id" "$TMP/check.got"; then
		wrong=$((wrong + 1))
		{ echo "wrong answer: gen $ck_id $ck_size $*"; cat "$TMP/check.err"; } >>"$TMP/failures"
	fi
}

# campaign_failures: what went wrong, for a failing test's output.
campaign_failures () {
	test -f "$TMP/failures" && head -n 60 "$TMP/failures"
	return 0
}
