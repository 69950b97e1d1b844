#!/bin/sh
# deps/musl.sh PREFIX: builds cachedo's libraries (libuv, SQLite, hiredis,
# libsodium, and cmocka for the unit tests) from Debian's source packages,
# with Debian's patches, for musl (musl-gcc), as static archives under
# PREFIX/lib with their headers under PREFIX/include. `make deps` runs it;
# `make` then links cachedo against them (see the Makefile's LIBC).
#
# Why: glibc's start-up asks the CPU about itself with about 40 cpuid
# instructions (its string functions and cache sizes), in a static
# executable as in the dynamic loader. In a virtual machine each one traps
# to the hypervisor: 3.6 us apiece on the machines this project runs on,
# about 0.15 ms of every run. musl asks nothing. README.md (Development)
# and bench/README.md have the figures.
#
# The sources come through apt, from the deb-src twins of the system's own
# package sources, with a private state directory: the system's apt
# configuration and lists are left as they are. Needs root or sudo only for
# the build tools, which `make deps` installs first.
set -eu

PREFIX=${1:?usage: deps/musl.sh PREFIX}
case $PREFIX in /*) ;; *) PREFIX=$(pwd)/$PREFIX ;; esac
PKGS="libuv1 sqlite3 hiredis libsodium cmocka"
W=$PREFIX.work
CC=musl-gcc
JOBS=$(nproc 2>/dev/null || echo 2)

step() { echo "  DEP     $1"; }
log=$W/build.log
# On a failure, what the failing step printed.
trap 'st=$?; [ $st -eq 0 ] || { echo "deps/musl.sh: failed; the end of $log:" >&2;
	tail -n 40 "$log" >&2 2>/dev/null; }; exit $st' EXIT

rm -rf "$W" "$PREFIX"
mkdir -p "$W/apt/sources.list.d" "$W/apt/lists/partial" "$W/src" \
	"$PREFIX/lib" "$PREFIX/include"

# The system's sources, as deb-src.
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	sed -e 's/^Types:.*/Types: deb-src/' "$f" > "$W/apt/sources.list.d/${f##*/}"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
	[ -f "$f" ] || continue
	sed -n -e 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" \
		>> "$W/apt/sources.list.d/system.list"
done
APT="-o Dir::Etc::SourceList=/dev/null
     -o Dir::Etc::SourceParts=$W/apt/sources.list.d
     -o Dir::State::Lists=$W/apt/lists
     -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
     -o APT::Sandbox::User=root -q"
step sources
# shellcheck disable=SC2086
apt-get $APT update >>"$log" 2>&1
# shellcheck disable=SC2086
(cd "$W/src" && apt-get $APT source --download-only $PKGS) >>"$log" 2>&1
for d in "$W"/src/*.dsc; do
	(cd "$W/src" && dpkg-source -q -x --no-check "$d") >>"$log" 2>&1
done
src() { for d in "$W"/src/"$1"-*/; do echo "${d%/}"; return; done; }

step hiredis
(cd "$(src hiredis)" && make CC=$CC OPTIMIZATION=-O2 static) >>"$log" 2>&1
mkdir -p "$PREFIX/include/hiredis"
cp "$(src hiredis)"/libhiredis.a "$PREFIX/lib/"
cp "$(src hiredis)"/*.h "$PREFIX/include/hiredis/"

step libuv
mkdir -p "$W/uv"
(cd "$W/uv" && cmake "$(src libuv1)" -DCMAKE_C_COMPILER=$CC \
	-DCMAKE_BUILD_TYPE=Release -DLIBUV_BUILD_TESTS=OFF \
	-DLIBUV_BUILD_BENCH=OFF && make -j"$JOBS" uv_a) >>"$log" 2>&1
cp "$W/uv/libuv_a.a" "$PREFIX/lib/libuv.a"
cp -r "$(src libuv1)"/include/. "$PREFIX/include/"

step sqlite3
# The amalgamation (one sqlite3.c), then Debian's compile options that
# change behaviour, without the extensions cachedo does not use.
mkdir -p "$W/sqlite"
(cd "$W/sqlite" && "$(src sqlite3)"/configure --disable-tcl && make sqlite3.c) \
	>>"$log" 2>&1
$CC -O2 -fno-strict-aliasing -DSQLITE_SECURE_DELETE -DSQLITE_THREADSAFE=1 \
	-DSQLITE_OMIT_LOOKASIDE=1 -DSQLITE_USE_URI=1 \
	-DSQLITE_MAX_SCHEMA_RETRY=25 -DSQLITE_LIKE_DOESNT_MATCH_BLOBS \
	-DSQLITE_MAX_VARIABLE_NUMBER=250000 -DSQLITE_OMIT_LOAD_EXTENSION \
	-DHAVE_PREAD=1 -DHAVE_PWRITE=1 -DHAVE_FDATASYNC=1 -DHAVE_USLEEP=1 \
	-DHAVE_GMTIME_R=1 -DHAVE_LOCALTIME_R=1 -DHAVE_ISNAN=1 -DHAVE_UTIME=1 \
	-DHAVE_STRCHRNUL=1 -DHAVE_MALLOC_USABLE_SIZE=1 -DHAVE_MALLOC_H=1 \
	-c "$W/sqlite/sqlite3.c" -o "$W/sqlite/sqlite3.o" >>"$log" 2>&1
ar rcs "$PREFIX/lib/libsqlite3.a" "$W/sqlite/sqlite3.o"
cp "$W/sqlite/sqlite3.h" "$W/sqlite/sqlite3ext.h" "$PREFIX/include/"

step libsodium
(cd "$(src libsodium)" && { [ -x configure ] || ./autogen.sh -s; } &&
	./configure CC=$CC --disable-shared --enable-static \
		--prefix="$PREFIX" && make -j"$JOBS" && make install) >>"$log" 2>&1

step cmocka
mkdir -p "$W/cmocka"
(cd "$W/cmocka" && cmake "$(src cmocka)" -DCMAKE_C_COMPILER=$CC \
	-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
	-DWITH_STATIC_LIB=ON -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF &&
	make -j"$JOBS") >>"$log" 2>&1
find "$W/cmocka" -name 'libcmocka*.a' -exec cp {} "$PREFIX/lib/libcmocka.a" \;
cp "$(src cmocka)"/include/cmocka.h "$PREFIX/include/"
test -f "$PREFIX/lib/libcmocka.a"

rm -rf "$W"
echo "  DEP     done: $PREFIX"
