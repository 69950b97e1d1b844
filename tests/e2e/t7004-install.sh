#!/bin/sh
# make install / uninstall with DESTDIR and PREFIX: the binary, the manual
# page and the three completions land where man, bash-completion, zsh and
# fish look for them (fish also with XDG_DATA_DIRS unset); the page renders
# without a warning.
. "$(dirname "$0")/lib.sh"

# Nothing here depends on the cache backend: run once, with the default.
test "$test_backend" = sqlite || skip_all "independent of the backend (runs with sqlite)"

# Install the binary under test: its build directory is make's O, and
# "-o all" keeps make from rebuilding it.
bindir=$(dirname "$CACHEDO")
DEST=$TMP/dest
installed="usr/bin/cachedo
usr/share/man/man1/cachedo.1
usr/share/bash-completion/completions/cachedo
usr/share/zsh/site-functions/_cachedo
usr/share/fish/vendor_completions.d/cachedo.fish"

if command -v make >/dev/null && [ -f "$bindir/.flags" ]; then
	test_set_prereq MAKE
fi
if test_have_prereq MAKE && command -v man >/dev/null; then
	test_set_prereq MAKE_MAN
fi

test_expect_success MAKE 'make install puts every file in place' '
	make -s -C "$ROOT" -o all install O="$bindir" DESTDIR="$DEST" PREFIX=/usr >out 2>&1 &&
	for f in $installed; do
		test -f "$DEST/$f" || { echo "missing $f" >&2; return 1; }
	done &&
	test -x "$DEST/usr/bin/cachedo" &&
	cmp "$DEST/usr/bin/cachedo" "$CACHEDO" &&
	cmp "$DEST/usr/share/man/man1/cachedo.1" "$ROOT/cmd/cachedo.1" &&
	"$DEST/usr/bin/cachedo" --version >version &&
	expect_grep "^cachedo " version
'

test_expect_success MAKE 'installed files are readable by all, the binary executable' '
	test "$(stat -c %a "$DEST/usr/bin/cachedo")" = 755 &&
	test "$(stat -c %a "$DEST/usr/share/man/man1/cachedo.1")" = 644 &&
	test "$(stat -c %a "$DEST/usr/share/zsh/site-functions/_cachedo")" = 644
'

test_expect_success MAKE_MAN 'man renders the installed page without warnings' '
	MANWIDTH=80 man --warnings -l "$DEST/usr/share/man/man1/cachedo.1" >page 2>warnings &&
	expect_lines 0 warnings &&
	expect_grep "^NAME" page &&
	expect_grep "^EXIT STATUS" page &&
	expect_grep -e "--zero-stats" page
'

test_expect_success MAKE 'PREFIX alone decides the paths' '
	make -s -C "$ROOT" -o all install O="$bindir" DESTDIR="$TMP/d2" PREFIX=/opt/cdo >out 2>&1 &&
	test -x "$TMP/d2/opt/cdo/bin/cachedo" &&
	test -f "$TMP/d2/opt/cdo/share/man/man1/cachedo.1" &&
	test -f "$TMP/d2/opt/cdo/share/bash-completion/completions/cachedo"
'

if test_have_prereq MAKE && command -v fish >/dev/null &&
	pkg-config --variable completionsdir fish >/dev/null 2>&1; then
	test_set_prereq MAKE_FISH
fi

# fish_in_root ROOT COMMAND-LINE: what fish, started with XDG_DATA_DIRS
# unset (as in many ssh sessions and containers), completes for
# COMMAND-LINE when its completion search path is looked up under ROOT, as
# if ROOT were the installed system.
fish_in_root () {
	env -u XDG_DATA_DIRS fish -c "
		set -l rooted
		for d in \$fish_complete_path
			set -a rooted '$1'\$d
		end
		set fish_complete_path \$rooted
		complete -C '$2'" | cut -f1
}

test_expect_success MAKE_FISH 'fish finds the completion of the default PREFIX without XDG_DATA_DIRS' '
	make -s -C "$ROOT" -o all install O="$bindir" DESTDIR="$TMP/d3" >out 2>&1 &&
	fish_in_root "$TMP/d3" "cachedo --zero-s" >out &&
	expect_grep -x -e --zero-stats out &&
	fish_in_root "$TMP/d3" "cachedo --show-c" >out &&
	expect_grep -x -e --show-config out &&
	make -s -C "$ROOT" -o all uninstall O="$bindir" DESTDIR="$TMP/d3" >out 2>&1 &&
	find "$TMP/d3" -type f >left &&
	expect_lines 0 left &&
	fish_in_root "$TMP/d3" "cachedo --zero-s" >out &&
	expect_no_grep -e --zero-stats out
'

test_expect_success MAKE 'FISH_VENDORDIR= installs the fish completion under PREFIX only' '
	make -s -C "$ROOT" -o all install O="$bindir" DESTDIR="$TMP/d4" FISH_VENDORDIR= >out 2>&1 &&
	find "$TMP/d4" -name cachedo.fish >fish &&
	expect_lines 1 fish &&
	expect_grep -x "$TMP/d4/usr/local/share/fish/vendor_completions.d/cachedo.fish" fish
'

test_expect_success MAKE 'make uninstall removes every file it installed' '
	make -s -C "$ROOT" -o all uninstall O="$bindir" DESTDIR="$DEST" PREFIX=/usr >out 2>&1 &&
	for f in $installed; do
		! test -e "$DEST/$f" || { echo "left $f" >&2; return 1; }
	done &&
	find "$DEST" -type f >left &&
	expect_lines 0 left
'


# The musl build (make deps builds deps/musl/, and make then links against
# it): cachedo starts without glibc's cpuid probing, ~40 traps to the
# hypervisor in a virtual machine (README, Development). Counted by
# single-stepping `cachedo --version`; /bin/true (glibc) is the control
# that shows the counter sees them. Not for the sanitizer build, which is
# on the system's libc.
if [ -f "$ROOT/deps/musl/lib/libsqlite3.a" ] && [ -z "$test_sanitize" ] &&
	[ "$(uname -m)" = x86_64 ] &&
	${CC:-cc} -O2 -o "$TMP/cpuid-count" "$TEST_DIR/cpuid-count.c" 2>/dev/null &&
	"$TMP/cpuid-count" /bin/true >/dev/null 2>&1; then
	test_set_prereq MUSL_BUILD
fi

test_expect_success MUSL_BUILD 'the musl build starts without a cpuid' '
	"$TMP/cpuid-count" /bin/true >control &&
	test "$(cut -d" " -f1 control)" -gt 0 &&
	"$TMP/cpuid-count" "$CACHEDO" --version >out &&
	expect_grep "^cachedo " out &&
	tail -n 1 out >count &&
	test "$(cut -d" " -f1 count)" -eq 0 &&
	test "$(cut -d" " -f2 count)" -gt 1000
'

# Nor does a run that hashes a key: the musl build tries the SHA-NI
# instructions under a SIGILL handler instead of asking cpuid (three
# traps). A hit of a mem: cache, with a small environment, to keep the
# single-stepping short.
test_expect_success MUSL_BUILD 'a hit of the musl build runs no cpuid' '
	echo hashed >small &&
	env -i HOME="$HOME" XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" \
		"$CACHEDO" -c mem: --ttl 1h -- /bin/cat small >out &&
	env -i HOME="$HOME" XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" \
		"$TMP/cpuid-count" "$CACHEDO" -c mem: --ttl 1h -v -- /bin/cat small >out 2>err &&
	expect_grep "^hashed" out &&
	expect_grep "hit" err &&
	tail -n 1 out >count &&
	test "$(cut -d" " -f1 count)" -eq 0 &&
	test "$(cut -d" " -f2 count)" -gt 10000
'

test_done
