#!/bin/sh
# What goes into the key: environment (and its policies), cwd, files, stdin,
# scope; and what never leaves it: environment values.
. "$(dirname "$0")/lib.sh"

unset FOO FOO1 FOO2 BAR

test_expect_success 'a changed environment variable misses' '
	FOO=1 cachedo counted env &&
	FOO=1 cachedo counted env &&
	expect_count env 1 &&
	FOO=2 cachedo counted env &&
	expect_count env 2
'

test_expect_success 'an unset variable differs from an empty one' '
	cachedo --key counted unset >k1 &&
	FOO= cachedo --key counted unset >k2 &&
	! cmp -s k1 k2 &&
	cachedo counted unset &&
	FOO= cachedo counted unset &&
	expect_count unset 2
'

test_expect_success 'a value cannot pass for another variable' '
	nl="
" &&
	env A=1 B=2 cachedo --key counted forge >k1 &&
	env "A=1${nl}B=2" cachedo --key counted forge >k2 &&
	env "A=1 B=2" cachedo --key counted forge >k3 &&
	! cmp -s k1 k2 &&
	! cmp -s k1 k3 &&
	! cmp -s k2 k3
'

test_expect_success 'volatile variables do not change the key' '
	env -u _ -u SHLVL -u OLDPWD -u PWD -u COLUMNS -u LINES -u CACHEDO_FOO \
		cachedo --key counted volatile >base &&
	for v in _ SHLVL OLDPWD PWD COLUMNS LINES CACHEDO_FOO; do
		env "$v=1" cachedo --key counted volatile >k1 &&
		env "$v=/x/2" cachedo --key counted volatile >k2 &&
		expect_cmp base k1 &&
		expect_cmp base k2 || exit 1
	done &&
	COLUMNS=80 LINES=24 SHLVL=3 CACHEDO_FOO=a cachedo counted volatile &&
	COLUMNS=100 LINES=50 SHLVL=4 CACHEDO_FOO=b cachedo counted volatile &&
	expect_count volatile 1
'

test_expect_success 'the order of the environment does not matter' '
	keep="HOME=$HOME XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR CACHEDO_CACHE=$CACHEDO_CACHE" &&
	env -i $keep A=1 B=2 "$CACHEDO" --key /bin/echo hi >k1 &&
	env -i $keep B=2 A=1 "$CACHEDO" --key /bin/echo hi >k2 &&
	env -i $keep B=3 A=1 "$CACHEDO" --key /bin/echo hi >k3 &&
	expect_cmp k1 k2 &&
	! cmp -s k1 k3 &&
	env -i $keep A=1 B=2 "$CACHEDO" "$TMP/bin/counted" order &&
	env -i $keep B=2 A=1 "$CACHEDO" "$TMP/bin/counted" order &&
	expect_count order 1
'

test_expect_success '--env PATTERN hashes only the matching variables' '
	FOO1=a BAR=x cachedo --env "FOO*" counted allow &&
	FOO1=a BAR=y cachedo --env "FOO*" counted allow &&
	FOO1=a cachedo --env "FOO*" counted allow &&
	expect_count allow 1 &&
	FOO1=b BAR=y cachedo --env "FOO*" counted allow &&
	expect_count allow 2 &&
	FOO1=b FOO2= cachedo --env "FOO*" counted allow &&
	expect_count allow 3
'

test_expect_success '--env is repeatable' '
	FOO1=a BAR=x cachedo --env FOO1 --env BAR counted allow2 &&
	FOO1=a BAR=y cachedo --env FOO1 --env BAR counted allow2 &&
	expect_count allow2 2 &&
	FOO1=a BAR=y FOO2=z cachedo --env FOO1 --env BAR counted allow2 &&
	expect_count allow2 2
'

test_expect_success '--env and --ignore-env take blank-separated lists, as CACHEDO_ENV' '
	FOO1=a BAR=x cachedo --env "FOO1 BAR" counted list1 &&
	FOO1=a BAR=y cachedo --env "FOO1  BAR" counted list1 &&
	expect_count list1 2 &&
	FOO1=a BAR=y FOO2=z cachedo --env "FOO1	BAR" counted list1 &&
	expect_count list1 2 &&
	FOO1=a BAR=b cachedo --env "FOO1 BAR" --pure /bin/sh -c "echo \${FOO1-unset} \${BAR-unset}" >out &&
	expect_eq "a b" "$(cat out)" &&
	BAR=1 BAZ=1 FOO=1 cachedo --ignore-env "BAR BAZ" counted list2 &&
	BAR=2 BAZ=2 FOO=1 cachedo --ignore-env "BAR BAZ" counted list2 &&
	expect_count list2 1 &&
	expect_status 125 cachedo --env " " true 2>err &&
	expect_grep "^cachedo: invalid --env .*expected non-empty, blank-separated patterns" err
'

test_expect_success 'an allowlist that matches no variable gets one warning' '
	cachedo --env "NOSUCH_* ALSO_NOT" counted nomatch >out 2>err &&
	expect_lines 1 err &&
	expect_grep -x "cachedo: warning: --env .NOSUCH_\* ALSO_NOT. matches no variable" err &&
	CACHEDO_ENV="NOSUCH_A NOSUCH_B" cachedo counted nomatch >out 2>err &&
	expect_grep -x "cachedo: warning: --env .NOSUCH_A NOSUCH_B. matches no variable" err &&
	cachedo -q --env NOSUCH counted nomatch >out 2>err &&
	expect_lines 0 err &&
	FOO=1 cachedo --env "NOSUCH FOO" counted nomatch >out 2>err &&
	expect_lines 0 err
'

test_expect_success 'CACHEDO_ENV sets the allowlist' '
	CACHEDO_ENV="FOO* OTHER" &&
	export CACHEDO_ENV &&
	FOO1=a BAR=x cachedo counted envlist &&
	FOO1=a BAR=y cachedo counted envlist &&
	expect_count envlist 1 &&
	FOO1=b BAR=y cachedo counted envlist &&
	expect_count envlist 2 &&
	OTHER=1 FOO1=b BAR=y cachedo counted envlist &&
	expect_count envlist 3
'

test_expect_success '--ignore-env drops a variable from the key' '
	BAR=x FOO=1 cachedo --ignore-env BAR counted ignore &&
	BAR=y FOO=1 cachedo --ignore-env BAR counted ignore &&
	FOO=1 cachedo --ignore-env BAR counted ignore &&
	expect_count ignore 1 &&
	BAR=y FOO=2 cachedo --ignore-env BAR counted ignore &&
	expect_count ignore 2 &&
	BAR=y FOO=2 BAZ=1 cachedo --ignore-env "BA*" counted ignore2 &&
	BAR=z FOO=2 BAZ=2 cachedo --ignore-env "BA*" counted ignore2 &&
	expect_count ignore2 1
'

test_expect_success '--no-env hashes no variable' '
	FOO=1 cachedo --no-env counted noenv &&
	FOO=2 BAR=3 cachedo --no-env counted noenv &&
	expect_count noenv 1
'

test_expect_success '--pure runs the command with only the hashed variables' '
	FOO=f BAR=b cachedo --env FOO --pure /bin/sh -c "echo \${FOO-unset} \${BAR-unset}" >out &&
	expect_eq "f unset" "$(cat out)" &&
	FOO=f BAR=b COLUMNS=80 cachedo --pure /bin/sh -c "echo \${FOO-unset} \${BAR-unset} \${COLUMNS-unset}" >out &&
	expect_eq "f b unset" "$(cat out)" &&
	FOO=f BAR=b cachedo --ignore-env BAR --pure /bin/sh -c "echo \${FOO-unset} \${BAR-unset}" >out &&
	expect_eq "f unset" "$(cat out)" &&
	FOO=f BAR=b cachedo --no-env --pure /usr/bin/env >out &&
	expect_lines 0 out
'

test_expect_success '--pure with an unlisted variable changed still hits' '
	FOO=f BAR=1 cachedo --env FOO --pure "$TMP/bin/counted" pure &&
	FOO=f BAR=2 cachedo --env FOO --pure "$TMP/bin/counted" pure &&
	expect_count pure 1
'

test_expect_success 'a changed executable (mtime or size) misses' '
	cp "$TMP/bin/counted" tool &&
	cachedo ./tool exe &&
	cachedo ./tool exe &&
	expect_count exe 1 &&
	touch -d "2001-01-01 00:00" tool &&
	cachedo ./tool exe &&
	expect_count exe 2 &&
	echo "# one line longer" >>tool &&
	touch -d "2001-01-01 00:00" tool &&
	cachedo ./tool exe &&
	expect_count exe 3
'

test_expect_success 'the key has the executable found in PATH, not its name' '
	mkdir a b &&
	cp "$TMP/bin/counted" a/tool &&
	cp "$TMP/bin/counted" b/tool &&
	touch -r a/tool b/tool &&
	PATH=$PWD/a:$PATH cachedo --env NONE tool which &&
	PATH=$PWD/a:$PATH cachedo --env NONE tool which &&
	expect_count which 1 &&
	PATH=$PWD/b:$PATH cachedo --env NONE tool which &&
	expect_count which 2
'

test_expect_success 'the working directory is part of the key, unless --no-cwd' '
	mkdir -p d1 d2 &&
	(cd d1 && cachedo counted cwd) &&
	(cd d2 && cachedo counted cwd) &&
	(cd d1 && cachedo counted cwd) &&
	expect_count cwd 2 &&
	(cd d1 && cachedo --no-cwd counted nocwd) &&
	(cd d2 && cachedo --no-cwd counted nocwd) &&
	expect_count nocwd 1
'

test_expect_success '--file PATH hashes the contents, or their absence' '
	echo 1 >input &&
	cachedo --file input counted file &&
	cachedo --file input counted file &&
	expect_count file 1 &&
	echo 2 >input &&
	cachedo --file input counted file &&
	expect_count file 2 &&
	rm input &&
	cachedo --file input counted file &&
	expect_count file 3 &&
	cachedo --file input counted file &&
	expect_count file 3 &&
	echo 2 >input &&
	cachedo --file input counted file &&
	expect_count file 3
'

test_expect_success '--file is repeatable' '
	echo a >fa &&
	echo b >fb &&
	cachedo --file fa --file fb counted files &&
	cachedo --file fa --file fb counted files &&
	expect_count files 1 &&
	echo c >fb &&
	cachedo --file fa --file fb counted files &&
	expect_count files 2
'

test_expect_success '--file DIR hashes names, types, sizes and mtimes below it, not contents' '
	mkdir -p tree/sub &&
	echo a >tree/a &&
	echo b >tree/sub/b &&
	cachedo --file tree counted tree &&
	cachedo --file tree counted tree &&
	expect_count tree 1 &&
	touch -r tree/sub/b stamp &&
	echo c >tree/sub/b &&
	touch -r stamp tree/sub/b &&
	cachedo --file tree counted tree &&
	expect_count tree 1 &&
	touch -d "2001-02-03 04:05:06" tree/sub/b &&
	cachedo --file tree counted tree &&
	expect_count tree 2 &&
	echo longer >tree/sub/b &&
	touch -d "2001-02-03 04:05:06" tree/sub/b &&
	cachedo --file tree counted tree &&
	expect_count tree 3 &&
	: >tree/new &&
	cachedo --file tree counted tree &&
	expect_count tree 4 &&
	rm tree/new &&
	cachedo --file tree counted tree &&
	expect_count tree 4 &&
	mv tree/a tree/renamed &&
	cachedo --file tree counted tree &&
	expect_count tree 5 &&
	mkdir tree/empty &&
	cachedo --file tree counted tree &&
	ln -s sub tree/link &&
	cachedo --file tree counted tree &&
	expect_count tree 7 &&
	cachedo --explain --file tree counted tree >out &&
	expect_grep "^file     tree tree of 5 entries (names, types, sizes, mtimes) " out
'

test_expect_success '--file DIR: past 100000 entries or 64 levels, one clear error' '
	mkdir wide &&
	(cd wide && seq 100001 | xargs touch) &&
	expect_status 125 cachedo --file wide counted bound 2>err &&
	expect_lines 1 err &&
	expect_grep -x "cachedo: cannot hash --file '\''wide'\'': more than 100000 entries below it (name a smaller directory, or the files that matter)" err &&
	rm wide/1 &&
	cachedo --file wide counted bound &&
	expect_count bound 1 &&
	deep=deep && i=0 &&
	while [ $i -lt 65 ]; do deep=$deep/d; i=$((i + 1)); done &&
	mkdir -p $deep &&
	expect_status 125 cachedo --file deep counted bound 2>err &&
	expect_lines 1 err &&
	expect_grep "cachedo: cannot hash --file '\''deep'\'': more than 64 levels of directories below it" err &&
	rmdir $deep &&
	cachedo --file deep counted bound &&
	expect_count bound 2
'

test_expect_success '--stdin hashes stdin and still feeds it to the command' '
	echo one | cachedo --stdin counted stdin cat >out &&
	expect_eq one "$(cat out)" &&
	echo two | cachedo --stdin counted stdin cat >out &&
	expect_eq two "$(cat out)" &&
	expect_count stdin 2 &&
	echo one | cachedo --stdin counted stdin cat >out &&
	expect_eq one "$(cat out)" &&
	expect_count stdin 2 &&
	printf "a\000b" >bin &&
	cachedo --stdin counted stdin cat <bin >out &&
	expect_cmp bin out &&
	expect_count stdin 3
'

test_expect_success 'without --stdin, stdin reaches the command but not the key' '
	echo one | cachedo counted nostdin cat >out &&
	expect_eq one "$(cat out)" &&
	echo two | cachedo counted nostdin cat >out &&
	expect_eq one "$(cat out)" &&
	expect_count nostdin 1
'

test_expect_success 'without --stdin, -v says once that piped stdin is not in the key' '
	echo one | cachedo -v counted pipenote cat >out 2>err &&
	expect_eq one "$(cat out)" &&
	expect_grep -x "cachedo: stdin: not in the key (a pipe); use --stdin" err &&
	expect_lines 2 err &&
	echo two | cachedo -v counted pipenote cat >out 2>err &&
	expect_eq one "$(cat out)" &&
	expect_grep -x "cachedo: stdin: not in the key (a pipe); use --stdin" err &&
	expect_grep "^cachedo: hit" err &&
	expect_lines 2 err &&
	echo two >file &&
	cachedo -v counted pipenote cat <file >out 2>err &&
	expect_grep -x "cachedo: stdin: not in the key (a regular file); use --stdin" err &&
	expect_count pipenote 1
'

test_expect_success 'the note is not given without -v, with --stdin, or for /dev/null' '
	echo one | cachedo counted quietpipe cat >out 2>err &&
	expect_lines 0 err &&
	cachedo -v counted quietpipe cat </dev/null >out 2>err &&
	expect_no_grep "stdin" err &&
	echo one | cachedo -v --stdin counted quietpipe cat >out 2>err &&
	expect_no_grep "not in the key" err
'

test_expect_success '--explain says that piped stdin is not in the key' '
	echo one | cachedo --explain counted cat >out &&
	expect_grep -x "stdin    not in the key (a pipe); use --stdin" out &&
	cachedo --explain counted cat </dev/null >out &&
	expect_no_grep "^stdin" out &&
	echo one | cachedo --stdin --explain counted cat >out &&
	expect_grep "^stdin    " out &&
	expect_no_grep "not in the key" out
'

# The README's "Makefiles and CI" recipes.
command -v make >/dev/null 2>&1 && test_set_prereq MAKE
test_expect_success MAKE 'make flags miss by default, and the README recipes hit' '
	mkdir mk &&
	printf "plain:\n\t@cachedo counted mkplain\n" >mk/Makefile &&
	printf "ignored:\n\t@cachedo counted mkignored\n" >>mk/Makefile &&
	printf "export CACHEDO_IGNORE_ENV = MAKEFLAGS MFLAGS MAKELEVEL\n" >mk/ignore.mk &&
	printf "flags:\n\t@cachedo --ignore-env MAKEFLAGS --ignore-env MFLAGS --ignore-env MAKELEVEL counted mkflags\n" >>mk/Makefile &&
	printf "allow:\n\t@cachedo counted mkallow\n" >>mk/Makefile &&
	unset MAKEFLAGS MFLAGS MAKELEVEL && # a make around the tests sets them
	for flags in "" -s -k -j2; do
		make -C mk --no-print-directory $flags plain flags >/dev/null &&
		CACHEDO_ENV="PATH LANG" make -C mk --no-print-directory $flags allow >/dev/null &&
		make -C mk --no-print-directory -f Makefile -f ignore.mk $flags ignored >/dev/null || return 1
	done &&
	expect_count mkplain 4 &&
	expect_count mkflags 1 &&
	expect_count mkignored 1 &&
	expect_count mkallow 1
'

test_expect_success '--stdin passes a large input through whole' '
	head -c 3000000 /dev/urandom >big &&
	cachedo --stdin counted bigin cat <big >out &&
	expect_cmp big out &&
	cachedo --stdin counted bigin cat <big >out &&
	expect_cmp big out &&
	expect_count bigin 1
'

test_expect_success '--scope names a separate namespace' '
	cachedo --scope a counted scope &&
	cachedo --scope b counted scope &&
	cachedo --scope a counted scope &&
	expect_count scope 2 &&
	cachedo counted scope &&
	expect_count scope 3
'

secret=s3cr3t-$$-hunter2

test_expect_success '--explain names variables but shows no value' '
	SECRET_TOKEN=$secret &&
	export SECRET_TOKEN &&
	expect_status 0 cachedo --explain counted explain >out 2>&1 &&
	expect_grep SECRET_TOKEN out &&
	expect_no_grep -F "$secret" out &&
	expect_count explain 0
'

test_expect_success LOCAL_STORE 'no environment value is ever stored' '
	SECRET_TOKEN=$secret cachedo counted secret >out &&
	SECRET_TOKEN=$secret cachedo counted secret >out &&
	expect_count secret 1 &&
	store_files >files &&
	test -s files &&
	xargs grep -l -a -F "secret run 1" <files >found &&
	test -s found &&
	xargs grep -l -a -F "$secret" <files >leaks || : &&
	expect_lines 0 leaks
'

test_expect_success 'the key of a fixed job is the same in every version' '
	key=$(env -i FOO=bar PATH=/usr/bin:/bin "$CACHEDO" --no-cwd --key -- no-such-cmd-xyz a b) &&
	expect_eq 1a896b018343974291f04bbc5af105cac9cee54fff97e531e42dec339bb2cb15 "$key"
'

test_done
