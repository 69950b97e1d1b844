#!/bin/sh
# Runs the unit test programs, then every e2e script once per backend, and
# counts their TAP lines ("ok N - ...", "not ok N - ...").
# Usage: tests/run.sh [--backends "sqlite dir"] UNIT_BIN... -- E2E_SCRIPT...
# The last line is "N passed, N failed" (", N skipped" when any).
backends=sqlite
if [ "$1" = --backends ]; then
  backends=$2
  shift 2
fi
units=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  units="$units $1"
  shift
done
[ "$1" = -- ] && shift

log=$(mktemp) || exit 1
trap 'rm -f "$log"' EXIT
passed=0 failed=0 skipped=0

# run NAME CMD...: runs one program, tallies its TAP lines
run() {
  name=$1
  shift
  "$@" >"$log" 2>&1
  rc=$?
  # TAP: "ok", "not ok"; either with "# SKIP" is a skip (cmocka writes
  # "not ok N # SKIP" for a skipped test).
  p=$(grep -c '^ok ' "$log" | tr -d ' ')
  s=$(grep -Eci '^(not )?ok .*# skip' "$log" | tr -d ' ')
  ps=$(grep -ci '^ok .*# skip' "$log" | tr -d ' ')
  f=$(grep -c '^not ok ' "$log" | tr -d ' ')
  p=$((p - ps))
  f=$((f - (s - ps)))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1 # it died, or failed outside any test
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  if [ "$f" -gt 0 ]; then
    echo "FAIL $name ($p passed, $f failed)"
    sed 's/^/    /' "$log"
  else
    echo "ok   $name ($p passed${s:+, $s skipped})"
  fi
}

for u in $units; do
  run "unit ${u##*/}" env CMOCKA_MESSAGE_OUTPUT=TAP "$u"
done
for b in $backends; do
  for t in "$@"; do
    run "e2e[$b] ${t##*/}" env CACHEDO_TEST_CACHE="$b" sh "$t"
  done
done

if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
