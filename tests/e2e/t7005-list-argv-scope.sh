#!/bin/sh
# What --list shows of an entry: its arguments shell-quoted (and as an argv
# array in JSON), its scope; --scope narrows --list and --stats to one scope.
. "$(dirname "$0")/lib.sh"

# json FILE EXPR: prints EXPR evaluated by python3 on the JSON in FILE (d).
json () {
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# The shipped exec: helper keeps no scope in its list.
test "$test_backend" = exec || test_set_prereq LISTS_SCOPE

test_expect_success '--list quotes arguments as a shell would read them' '
	cachedo counted q1 sh -c "echo \"*.so\" | head -3" >/dev/null &&
	cachedo counted q2 echo a "b c" >/dev/null &&
	cachedo counted q3 echo "a b" c >/dev/null &&
	cachedo counted q4 echo "it'"'"'s" "" >/dev/null &&
	expect_count q2 1 && expect_count q3 1 && expect_count q4 1 &&
	cachedo --list >out &&
	expect_grep " counted q1 sh -c '"'"'echo \"\*\.so\" | head -3'"'"'\$" out &&
	expect_grep " counted q2 echo a '"'"'b c'"'"'\$" out &&
	expect_grep " counted q3 echo '"'"'a b'"'"' c\$" out &&
	expect_grep " counted q4 echo '"'"'it'"'"'\\\\'"'"''"'"'s'"'"' '"'"''"'"'\$" out
'

test_expect_success 'the quoted command runs the same argv again in a shell' '
	cachedo --list --json >out.json &&
	for i in 0 1 2 3; do
		cmd=$(json out.json "d[$i][\"command\"]") &&
		eval "set -- $cmd" &&
		printf "%s\n" "$@" >argv.sh &&
		json out.json "\"\\n\".join(d[$i][\"argv\"])" >argv.json &&
		expect_cmp argv.json argv.sh || return 1
	done
'

test_expect_success '--list --json has an argv array with the exact arguments' '
	cachedo --list --json >out.json &&
	expect_eq "counted|q3|echo|a b|c" \
		"$(json out.json "\"|\".join([r for r in d if r[\"argv\"][1] == \"q3\"][0][\"argv\"])")" argv &&
	expect_eq "counted|q2|echo|a|b c" \
		"$(json out.json "\"|\".join([r for r in d if r[\"argv\"][1] == \"q2\"][0][\"argv\"])")" argv &&
	expect_eq None "$(json out.json "[r for r in d if r[\"argv\"][1] == \"q2\"][0][\"scope\"]")" scope
'

test_expect_success LISTS_SCOPE '--list shows the scope, --list --scope only that scope' '
	cachedo --scope alpha counted s1 >/dev/null &&
	cachedo --scope beta counted s2 >/dev/null &&
	cachedo --list >out &&
	expect_grep "^KEY .* SCOPE  *COMMAND\$" out &&
	expect_grep " alpha  *counted s1\$" out &&
	expect_grep " beta  *counted s2\$" out &&
	expect_grep " -  *counted q2 " out &&
	cachedo --list --json >out.json &&
	expect_eq alpha "$(json out.json "[r for r in d if r[\"argv\"][1] == \"s1\"][0][\"scope\"]")" scope &&
	cachedo --list --scope alpha >out &&
	expect_lines 2 out &&
	expect_grep " alpha  *counted s1\$" out &&
	cachedo --list --json --scope beta >out.json &&
	expect_eq 1 "$(json out.json "len(d)")" rows &&
	expect_eq beta "$(json out.json "d[0][\"scope\"]")" scope &&
	CACHEDO_SCOPE=alpha cachedo --list >out &&
	expect_lines 2 out
'

test_expect_success LISTS_SCOPE '--stats --scope counts only that scope' '
	cachedo --scope alpha counted s3 sh -c "head -c 5000 /dev/zero" >/dev/null &&
	cachedo --stats --scope alpha >out &&
	expect_grep "^scope  *alpha " out &&
	expect_grep "^entries  *2\$" out &&
	cachedo --stats --json --scope alpha >out.json &&
	expect_eq 2 "$(json out.json "d[\"entries\"]")" entries &&
	expect_eq alpha "$(json out.json "d[\"scope\"]")" scope &&
	test "$(json out.json "d[\"bytes\"]")" -gt 5000 &&
	cachedo --stats --json --scope beta >out.json &&
	expect_eq 1 "$(json out.json "d[\"entries\"]")" entries &&
	test "$(json out.json "d[\"bytes\"]")" -lt 5000 &&
	cachedo --stats --json >out.json &&
	expect_eq 7 "$(json out.json "d[\"entries\"]")" entries &&
	expect_eq None "$(json out.json "d[\"scope\"]")" scope
'

test_expect_success '--list --scope of an unused scope: no entries, on stderr' '
	if test_have_prereq LISTS_SCOPE; then
		expect_status 0 cachedo --list --scope nobody >out 2>err &&
		expect_lines 0 out &&
		expect_eq "cachedo: no entries" "$(cat err)"
	else
		expect_status 1 cachedo --list --scope nobody >out 2>err &&
		expect_grep "cannot tell the entries of one scope apart" err
	fi
'

test_expect_success 'an empty --list says no entries on stderr; --json prints []' '
	cachedo --clear &&
	expect_status 0 cachedo --list >out 2>err &&
	expect_lines 0 out &&
	expect_eq "cachedo: no entries" "$(cat err)" &&
	expect_status 0 cachedo --list --json >out 2>err &&
	expect_eq "[]" "$(cat out)" &&
	expect_lines 0 err
'

test_done
