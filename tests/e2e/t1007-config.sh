#!/bin/sh
# Configuration precedence: flag > CACHEDO_* environment > config file > default.
. "$(dirname "$0")/lib.sh"

unset CACHEDO_CACHE

test_expect_success 'the cache URL: config file, then environment, then flag' '
	XDG_CONFIG_HOME=$TMP/cfg-cache &&
	write_config <<-EOF &&
	cache = sqlite:$PWD/a.db
	EOF
	cachedo counted where &&
	test -f a.db &&
	test ! -e b.db &&
	test ! -e "$XDG_CACHE_HOME/cachedo/cache.db" &&
	CACHEDO_CACHE=sqlite:$PWD/b.db cachedo counted where &&
	test -f b.db &&
	CACHEDO_CACHE=sqlite:$PWD/b.db cachedo --cache sqlite:$PWD/c.db counted where &&
	test -f c.db &&
	expect_count where 3 &&
	cachedo counted where &&
	expect_count where 3
'

test_expect_success 'the default cache is under $XDG_CACHE_HOME, else ~/.cache' '
	XDG_CONFIG_HOME=$TMP/cfg-none &&
	cachedo counted default &&
	test -f "$XDG_CACHE_HOME/cachedo/cache.db" &&
	unset XDG_CACHE_HOME &&
	cachedo counted default &&
	test -f "$HOME/.cache/cachedo/cache.db" &&
	expect_count default 2
'

test_expect_success 'the config file is $XDG_CONFIG_HOME/cachedo/config, else ~/.config' '
	XDG_CONFIG_HOME=$HOME/.config &&
	write_config <<-EOF &&
	cache = sqlite:$PWD/home-config.db
	EOF
	unset XDG_CONFIG_HOME &&
	cachedo counted homeconfig &&
	test -f home-config.db
'

test_expect_success 'the TTL: config file beats the default' '
	XDG_CONFIG_HOME=$TMP/cfg-ttl1 &&
	write_config <<-\EOF &&
	ttl = 200ms
	EOF
	cachedo counted ttl1 &&
	sleep 0.3 &&
	cachedo counted ttl1 &&
	expect_count ttl1 2 &&
	cachedo --ttl 1h counted ttl1 &&
	expect_count ttl1 2
'

test_expect_success 'the TTL: CACHEDO_TTL beats the config file' '
	XDG_CONFIG_HOME=$TMP/cfg-ttl2 &&
	write_config <<-\EOF &&
	ttl = 1h
	EOF
	CACHEDO_TTL=200ms cachedo counted ttl2 &&
	sleep 0.3 &&
	CACHEDO_TTL=200ms cachedo counted ttl2 &&
	expect_count ttl2 2 &&
	cachedo counted ttl2 &&
	expect_count ttl2 2
'

test_expect_success 'the TTL: a flag beats CACHEDO_TTL' '
	CACHEDO_TTL=200ms &&
	export CACHEDO_TTL &&
	cachedo --ttl 1h counted ttl3 &&
	sleep 0.3 &&
	cachedo --ttl 1h counted ttl3 &&
	expect_count ttl3 1 &&
	cachedo counted ttl3 &&
	expect_count ttl3 2
'

test_expect_success 'comments, blank lines and spacing in the config are fine' '
	XDG_CONFIG_HOME=$TMP/cfg-comments &&
	write_config <<-EOF &&
	# cachedo configuration

	   # an indented comment
	ttl = 1h
	cache   =   sqlite:$PWD/commented.db

	EOF
	expect_status 0 cachedo counted comments 2>err &&
	expect_lines 0 err &&
	test -f commented.db &&
	cachedo counted comments &&
	expect_count comments 1
'

test_expect_success 'a bad value in the config file is an error naming the file' '
	XDG_CONFIG_HOME=$TMP/cfg-bad &&
	write_config <<-\EOF &&
	ttl = soon
	EOF
	expect_status 125 cachedo counted badvalue 2>err &&
	expect_lines 1 err &&
	expect_grep -F "$XDG_CONFIG_HOME/cachedo/config" err &&
	expect_grep -F soon err &&
	expect_count badvalue 0
'

test_expect_success 'a comment may follow a value' '
	XDG_CONFIG_HOME=$TMP/cfg-trailing &&
	write_config <<-EOF &&
	ttl = 1h   # an hour
	cache = sqlite:$PWD/trailing.db	# after a tab
	EOF
	expect_status 0 cachedo counted trailing 2>err &&
	expect_lines 0 err &&
	test -f trailing.db &&
	cachedo counted trailing &&
	expect_count trailing 1
'

test_expect_success 'an unknown setting suggests the nearest and lists the valid ones' '
	XDG_CONFIG_HOME=$TMP/cfg-unknown &&
	write_config <<-\EOF &&
	tll = 5m
	EOF
	expect_status 125 cachedo counted unknown 2>err &&
	expect_lines 1 err &&
	expect_grep -F "config:1: unknown setting '\''tll'\'' (did you mean ttl? valid: ttl, fail-ttl," err &&
	expect_grep -F ", verbose, quiet)" err &&
	expect_count unknown 0
'

test_expect_success '--show-config names each value'\''s origin' '
	XDG_CONFIG_HOME=$TMP/cfg-show &&
	write_config <<-EOF &&
	# settings
	ttl = 90min # long
	max-size = 1.5G
	cache = sqlite:$PWD/from-file.db
	EOF
	CACHEDO_CACHE=sqlite:$PWD/from-env.db CACHEDO_STALE=1h \
		cachedo --ref -v --env PATH --show-config >out 2>err &&
	expect_lines 0 err &&
	expect_grep -E "^ttl = 1h30m +\($XDG_CONFIG_HOME/cachedo/config:2\)\$" out &&
	expect_grep -E "^max-size = 1536M +\($XDG_CONFIG_HOME/cachedo/config:3\)\$" out &&
	expect_grep -E "^cache = sqlite:$PWD/from-env.db +\(CACHEDO_CACHE\)\$" out &&
	expect_grep -E "^stale = 1h +\(CACHEDO_STALE\)\$" out &&
	expect_grep -E "^refresh = true +\(--refresh\)\$" out &&
	expect_grep -E "^verbose = true +\(--verbose\)\$" out &&
	expect_grep -E "^env = PATH +\(--env\)\$" out &&
	expect_grep -E "^fail-ttl = 1h30m +\(default: the ttl\)\$" out &&
	expect_grep -E "^lock-timeout = 10m +\(default\)\$" out &&
	expect_grep -E "^quiet = false +\(default\)\$" out &&
	test ! -e from-env.db &&
	test ! -e from-file.db
'

test_expect_success '--show-config shows the default cache resolved, and runs nothing' '
	XDG_CONFIG_HOME=$TMP/cfg-none &&
	unset CACHEDO_CACHE &&
	cachedo --show-config >out &&
	expect_grep -E "^cache = sqlite:$XDG_CACHE_HOME/cachedo/cache.db +\(default\)\$" out &&
	expect_status 125 cachedo --show-config counted show 2>err &&
	expect_grep -F "take no command" err &&
	expect_count show 0
'

test_expect_success 'a CACHEDO_* variable set but empty counts as unset' '
	CACHEDO_SCOPE= CACHEDO_TTL= cachedo counted emptyvar >out 2>err &&
	expect_lines 0 err &&
	expect_eq "$(cachedo --key counted emptyvar)" \
		"$(CACHEDO_SCOPE= cachedo --key counted emptyvar)" &&
	CACHEDO_SCOPE= cachedo counted emptyvar &&
	expect_count emptyvar 1
'

test_expect_success 'a NUL byte anywhere in the config file is an error naming file and line' '
	printf "ttl = 5m\0junk\n" | write_config &&
	expect_status 125 cachedo counted nul true 2>err &&
	expect_lines 1 err &&
	expect_grep "config:1: a NUL byte" err &&
	printf "# fine\n\0\0garbage = = =\n" | write_config &&
	expect_status 125 cachedo counted nul true 2>err &&
	expect_grep "config:2: a NUL byte" err &&
	printf "ttl = 5m\n# a comm\0ent\n" | write_config &&
	expect_status 125 cachedo counted nul true 2>err &&
	expect_grep "config:2: a NUL byte" err &&
	expect_count nul 0 &&
	rm "$XDG_CONFIG_HOME/cachedo/config"
'

test_expect_success 'control bytes of a config value are shown escaped' '
	printf "ttl = 5\033[31m\n" | write_config &&
	expect_status 125 cachedo true 2>err &&
	expect_lines 1 err &&
	expect_grep -F "config:1: invalid ttl '"'"'5\x1b[31m'"'"'" err &&
	rm "$XDG_CONFIG_HOME/cachedo/config"
'

test_done
