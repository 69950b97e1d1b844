# cachedo: the only build system. `make`, `make test`, `make install`.
# Knobs: CC CFLAGS LDFLAGS PREFIX DESTDIR O (build dir) V=1 (loud)
#        BASHCOMPDIR ZSHCOMPDIR FISHCOMPDIR FISH_VENDORDIR (completions)
#        SANITIZE=address,undefined  STATIC=0 (a dynamic executable)
#        STATIC_DEPS=0 (link the libraries dynamically too)
#        LIBC=musl|system (musl when `make deps` built deps/musl/)
#        FUZZ_TIME=30 (seconds per target of `make fuzz`), FUZZ_CC=clang
#        CAMPAIGN_SEED CAMPAIGN_KILLS CAMPAIGN_LARGE CAMPAIGN_DAMAGES
#        (the crash and corruption campaigns of `make test`)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
# fish finds /usr/local/share/fish/vendor_completions.d through
# XDG_DATA_DIRS only, which ssh sessions and containers often leave unset;
# fish then looks in its own vendor directory, which its pkg-config file
# names. So with the default PREFIX a second copy goes there when it
# differs (FISH_VENDORDIR= installs none; other prefixes set it to want one).
ifeq ($(PREFIX),/usr/local)
FISH_VENDORDIR ?= $(shell $(PKG_CONFIG) --variable completionsdir fish 2>/dev/null)
endif
FISH_EXTRA = $(filter-out $(FISHCOMPDIR),$(FISH_VENDORDIR))
CC ?= cc
CFLAGS ?= -O2 -g
PKG_CONFIG ?= pkg-config
INSTALL ?= install
O ?= build
STATIC_DEPS ?= 1
# A fully static executable: a hit is mostly process start-up, and without
# the dynamic loader it starts about a third faster (bench/). The
# sanitizers need a dynamic executable.
ifdef SANITIZE
STATIC = 0
endif
STATIC ?= 1
TEST_BACKENDS ?= sqlite dir mem exec redis

WARNINGS = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
           -Wvla -Wformat=2
DEPS = libuv sqlite3 libsodium hiredis

# LIBC=musl: a static executable on musl, with the libraries that `make
# deps` builds into MUSL_DEPS from Debian's sources (deps/musl.sh). glibc
# starts every process with ~40 cpuid instructions, each a trap to the
# hypervisor in a virtual machine: about 0.15 ms of every run there, which
# musl does not pay. The default when MUSL_DEPS is built; the sanitizers
# and the fuzz targets need the system's libc (LIBC=system).
MUSL_DEPS ?= deps/musl
ifneq ($(SANITIZE)$(filter fuzz fuzz-build fuzz-bins,$(MAKECMDGOALS)),)
LIBC = system
endif
LIBC ?= $(if $(wildcard $(MUSL_DEPS)/lib/libsqlite3.a),musl,system)

ifeq ($(LIBC),musl)
ifeq ($(origin CC),default)
CC = musl-gcc
endif
DEP_CFLAGS := -I$(MUSL_DEPS)/include -I$(MUSL_DEPS)/include/hiredis
DEP_LIBS = $(addprefix $(MUSL_DEPS)/lib/,libhiredis.a libuv.a libsqlite3.a \
           libsodium.a) -lm
CMOCKA_LIBS = $(MUSL_DEPS)/lib/libcmocka.a
else
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(DEPS) 2>/dev/null)
CMOCKA_LIBS = $$($(PKG_CONFIG) --libs cmocka)

# Static archives of the dependencies where installed: a hit starts faster
# when the dynamic loader has only libc to map.
static_lib = $(shell p=$$($(CC) -print-file-name=$(1)); test -f "$$p" && echo "$$p")
ifeq ($(STATIC_DEPS),1)
UV_A := $(or $(call static_lib,libuv_a.a),$(call static_lib,libuv.a))
SQLITE_A := $(call static_lib,libsqlite3.a)
SODIUM_A := $(call static_lib,libsodium.a)
HIREDIS_A := $(call static_lib,libhiredis.a)
endif
DEP_LIBS = $(or $(HIREDIS_A),-lhiredis) $(or $(UV_A),-luv) $(or $(SQLITE_A),-lsqlite3) \
           $(or $(SODIUM_A),-lsodium) -lresolv -lpthread -ldl -lm
endif

ifdef SANITIZE
SAN_FLAGS = -fsanitize=$(SANITIZE) -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
endif

ALL_CFLAGS = $(CFLAGS) -std=c11 -D_GNU_SOURCE $(WARNINGS) $(SAN_FLAGS) \
             $(DEP_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SAN_FLAGS)
EXE_LDFLAGS = $(ALL_LDFLAGS) $(STATIC_LDFLAGS)

LIB_SRC = $(wildcard lib/*.c)
CMD_SRC = cmd/main.c
ifeq ($(STATIC)$(LIBC),1musl)
STATIC_LDFLAGS = -static
else ifeq ($(STATIC),1)
# What exists only to make a static build on glibc work.
CMD_SRC += $(wildcard lib/compat/*.c)
STATIC_LDFLAGS = -static -Wl,--wrap=dlopen,--wrap=getaddrinfo,--wrap=freeaddrinfo
endif
UNIT_SRC = $(wildcard tests/unit/test_*.c)
LIB_OBJ = $(LIB_SRC:%.c=$(O)/%.o)
CMD_OBJ = $(CMD_SRC:%.c=$(O)/%.o)
UNIT_BIN = $(UNIT_SRC:%.c=$(O)/%)
E2E = $(sort $(wildcard tests/e2e/t[0-9]*.sh))

ifneq ($(V),1)
Q = @
QCC = @echo "  CC      $@";
QLD = @echo "  LINK    $@";
QAR = @echo "  AR      $@";
endif

all: $(O)/cachedo

$(O)/cachedo: $(CMD_OBJ) $(O)/libcachedo.a
	$(QLD)$(CC) $(EXE_LDFLAGS) -o $@ $(CMD_OBJ) $(O)/libcachedo.a $(DEP_LIBS)

$(O)/libcachedo.a: $(LIB_OBJ)
	$(QAR)rm -f $@ && ar rcs $@ $(LIB_OBJ)

$(O)/%.o: %.c $(O)/.flags
	@mkdir -p $(dir $@)
	$(QCC)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(O)/tests/unit/%: tests/unit/%.c tests/unit/unit.h $(O)/libcachedo.a $(O)/.flags
	@mkdir -p $(dir $@)
	$(QLD)$(CC) $(ALL_CFLAGS) -Ilib -o $@ $< $(O)/libcachedo.a \
		$(ALL_LDFLAGS) $(DEP_LIBS) $(CMOCKA_LIBS)

# The scale benchmarks' filler: writes entries through the library.
$(O)/bench/fill: bench/fill.c $(O)/libcachedo.a $(O)/.flags
	@mkdir -p $(dir $@)
	$(QLD)$(CC) $(ALL_CFLAGS) -Ilib -o $@ $< $(O)/libcachedo.a \
		$(ALL_LDFLAGS) $(DEP_LIBS)

# The store suite includes each backend's side, store_<name>_test.c.
$(O)/tests/unit/test_store: $(wildcard tests/unit/store_*_test.c)

# Rebuild everything when the flags change.
$(O)/.flags: FORCE
	@mkdir -p $(O)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(DEP_LIBS)' | cmp -s - $@ || \
		echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(DEP_LIBS)' > $@

# Fuzz targets (tests/fuzz/fuzz_*.c), built with clang's libFuzzer, ASan
# and UBSan over their own build of the library; `make fuzz` runs each for
# FUZZ_TIME seconds from its seed corpus (tests/fuzz/corpus/TARGET/, never
# written: new inputs go under $(FUZZ_O)/corpus/). A finding stops the run
# and leaves the input in $(FUZZ_O)/.
FUZZ_CC ?= clang
FUZZ_TIME ?= 30
FUZZ_O = $(O)/fuzz
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_O)/%)

fuzz-build:
	$(Q)$(MAKE) --no-print-directory O=$(FUZZ_O)/lib CC=$(FUZZ_CC) \
		SANITIZE=fuzzer-no-link,address,undefined $(FUZZ_O)/lib/libcachedo.a
	$(Q)$(MAKE) --no-print-directory fuzz-bins

fuzz-bins: $(FUZZ_BIN)
	@:

$(FUZZ_O)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_O)/lib/libcachedo.a
	$(QLD)$(FUZZ_CC) $(CFLAGS) -std=c11 -D_GNU_SOURCE $(WARNINGS) -Wno-missing-prototypes \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-fno-omit-frame-pointer $(DEP_CFLAGS) -Ilib -o $@ $< \
		$(FUZZ_O)/lib/libcachedo.a $(DEP_LIBS)

$(FUZZ_O)/fuzz_cli: cmd/main.c lib/cachedo.h
$(FUZZ_O)/fuzz_entry: lib/entry.h lib/cdo_int.h

fuzz: fuzz-build
	$(Q)for t in $(FUZZ_BIN); do \
		n=$${t##*/fuzz_}; \
		mkdir -p $(FUZZ_O)/corpus/$$n && \
		echo "  FUZZ    $$n ($(FUZZ_TIME) s)" && \
		$$t -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
			-max_len=65536 -print_final_stats=1 -close_fd_mask=1 \
			-artifact_prefix=$(FUZZ_O)/$$n- $(FUZZ_O)/corpus/$$n \
			tests/fuzz/corpus/$$n >$(FUZZ_O)/$$n.log 2>&1 || \
			{ tail -n 60 $(FUZZ_O)/$$n.log; echo "fuzz $$n: FAILED (log: $(FUZZ_O)/$$n.log)"; exit 1; }; \
		grep -E '^stat::number_of_executed_units|^Done' $(FUZZ_O)/$$n.log | \
			sed "s/^/    $$n: /"; \
	done

deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -q && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
		build-essential pkg-config libuv1-dev libsqlite3-dev libsodium-dev \
		libcmocka-dev libhiredis-dev redis-server time \
		bash-completion zsh fish man-db python3 procps strace clang libclang-rt-14-dev \
		musl-tools dpkg-dev cmake tcl autoconf automake libtool && \
	sh deps/musl.sh $(MUSL_DEPS)

test: all $(UNIT_BIN) $(O)/bench/fill
	$(Q)CACHEDO=$(CURDIR)/$(O)/cachedo CACHEDO_TEST_SANITIZE=$(SANITIZE) \
		CACHEDO_TEST_FILL=$(CURDIR)/$(O)/bench/fill sh tests/run.sh \
		--backends "$(TEST_BACKENDS)" $(UNIT_BIN) -- $(E2E)

test-unit: $(UNIT_BIN)
	$(Q)sh tests/run.sh $(UNIT_BIN) --

test-e2e: all $(O)/bench/fill
	$(Q)CACHEDO=$(CURDIR)/$(O)/cachedo CACHEDO_TEST_SANITIZE=$(SANITIZE) \
		CACHEDO_TEST_FILL=$(CURDIR)/$(O)/bench/fill sh tests/run.sh \
		--backends "$(or $(CACHEDO_TEST_CACHE),$(TEST_BACKENDS))" -- $(E2E)

check: test

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(INSTALL) -m 755 $(O)/cachedo $(DESTDIR)$(BINDIR)/cachedo
	$(INSTALL) -m 644 cmd/cachedo.1 $(DESTDIR)$(MANDIR)/man1/cachedo.1
	$(INSTALL) -m 644 completions/cachedo.bash $(DESTDIR)$(BASHCOMPDIR)/cachedo
	$(INSTALL) -m 644 completions/_cachedo $(DESTDIR)$(ZSHCOMPDIR)/_cachedo
	$(INSTALL) -m 644 completions/cachedo.fish $(DESTDIR)$(FISHCOMPDIR)/cachedo.fish
ifneq ($(FISH_EXTRA),)
	$(INSTALL) -d $(DESTDIR)$(FISH_EXTRA)
	$(INSTALL) -m 644 completions/cachedo.fish $(DESTDIR)$(FISH_EXTRA)/cachedo.fish
endif

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cachedo $(DESTDIR)$(MANDIR)/man1/cachedo.1 \
		$(DESTDIR)$(BASHCOMPDIR)/cachedo $(DESTDIR)$(ZSHCOMPDIR)/_cachedo \
		$(DESTDIR)$(FISHCOMPDIR)/cachedo.fish \
		$(if $(FISH_EXTRA),$(DESTDIR)$(FISH_EXTRA)/cachedo.fish)

format:
	clang-format -i lib/*.c lib/*.h lib/compat/*.c cmd/*.c tests/unit/*.c tests/unit/*.h tests/fuzz/*.c tests/fuzz/*.h

check-format:
	clang-format --dry-run --Werror lib/*.c lib/*.h lib/compat/*.c cmd/*.c tests/unit/*.c tests/unit/*.h tests/fuzz/*.c tests/fuzz/*.h

clean:
	rm -rf $(O)

.PHONY: all deps test test-unit test-e2e check install uninstall format \
	check-format clean fuzz fuzz-build fuzz-bins FORCE

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d)
