# redis.sh: a throw-away redis-server for the tests, with persistence off,
# listening on a unix socket in a temp directory and on a free TCP port of
# 127.0.0.1. Sourced by lib.sh (and by tests that need a second server).
#
#   redis_start DIR [REDIS-SERVER-OPTION]...  start; sets REDIS_SOCK,
#       REDIS_PORT, REDIS_PID, REDIS_URL (unix://) and REDIS_TCP_URL
#   redis_cli [ARG]...    redis-cli on the socket of the last server started
#   redis_stop [DIR]      stop the server of DIR (default: the last started)
#   redis_stop_all        stop every server started here (lib.sh does, at exit)
#
# As a program: `sh tests/e2e/redis.sh start DIR` starts one in the
# background and prints its variables as shell assignments; `sh
# tests/e2e/redis.sh stop DIR` stops it.

redis_dirs=

# redis_free_port: a port of 127.0.0.1 that nothing listens on (likely).
redis_free_port () {
	redis_p=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
	echo $((20000 + redis_p % 40000))
}

redis_start () {
	redis_dir=$1
	shift
	command -v redis-server >/dev/null 2>&1 || {
		echo "redis_start: no redis-server in PATH" >&2
		return 1
	}
	mkdir -p "$redis_dir" && chmod 700 "$redis_dir" || return 1
	redis_try=0
	while [ "$redis_try" -lt 5 ]; do
		redis_try=$((redis_try + 1))
		REDIS_PORT=$(redis_free_port)
		REDIS_SOCK=$redis_dir/redis.sock
		rm -f "$REDIS_SOCK"
		redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
			--unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
			--save '' --appendonly no --dir "$redis_dir" \
			--logfile "$redis_dir/redis.log" --daemonize no "$@" \
			</dev/null >/dev/null 2>&1 &
		REDIS_PID=$!
		echo "$REDIS_PID" >"$redis_dir/redis.pid"
		redis_i=0
		while [ "$redis_i" -lt 100 ]; do
			if ! kill -0 "$REDIS_PID" 2>/dev/null; then
				break # did not start: most likely the port was taken
			fi
			# Ready: it answers (NOAUTH when it wants a password).
			case $(redis-cli -s "$REDIS_SOCK" ping 2>&1) in
			PONG | NOAUTH*) redis_up=1 ;;
			*) redis_up= ;;
			esac
			if [ -n "$redis_up" ]; then
				REDIS_URL=unix://$REDIS_SOCK
				REDIS_TCP_URL=redis://127.0.0.1:$REDIS_PORT
				redis_dirs="$redis_dirs $redis_dir"
				# Also on file: a server started in a test's subshell is
				# stopped by the script's redis_stop_all too.
				test -z "${TMP-}" || echo "$redis_dir" >>"$TMP/redis-dirs"
				export REDIS_SOCK REDIS_PORT REDIS_PID REDIS_URL REDIS_TCP_URL
				return 0
			fi
			redis_i=$((redis_i + 1))
			sleep 0.05
		done
		kill -9 "$REDIS_PID" 2>/dev/null || :
		wait "$REDIS_PID" 2>/dev/null || :
	done
	echo "redis_start: redis-server did not start; its log:" >&2
	sed 's/^/| /' "$redis_dir/redis.log" >&2 2>/dev/null
	return 1
}

redis_cli () {
	redis-cli -s "$REDIS_SOCK" "$@"
}

redis_stop () {
	redis_d=${1:-$(dirname "$REDIS_SOCK")}
	test -f "$redis_d/redis.pid" || return 0
	redis_pid=$(cat "$redis_d/redis.pid")
	rm -f "$redis_d/redis.pid"
	kill -CONT "$redis_pid" 2>/dev/null || : # a frozen server cannot exit
	kill -TERM "$redis_pid" 2>/dev/null || return 0
	redis_i=0
	while kill -0 "$redis_pid" 2>/dev/null && [ "$redis_i" -lt 100 ]; do
		redis_i=$((redis_i + 1))
		sleep 0.05
	done
	kill -9 "$redis_pid" 2>/dev/null || :
	return 0
}

redis_stop_all () {
	for redis_d in $redis_dirs $(cat "${TMP:-/nonexistent}/redis-dirs" 2>/dev/null); do
		redis_stop "$redis_d"
	done
	redis_dirs=
}

case ${0##*/} in
redis.sh)
	case $1 in
	start)
		test -n "$2" || { echo "usage: sh redis.sh start DIR" >&2; exit 2; }
		redis_dir_arg=$2
		shift 2
		redis_start "$redis_dir_arg" "$@" || exit 1
		echo "REDIS_SOCK=$REDIS_SOCK REDIS_PORT=$REDIS_PORT REDIS_PID=$REDIS_PID REDIS_URL=$REDIS_URL REDIS_TCP_URL=$REDIS_TCP_URL"
		;;
	stop)
		test -n "$2" || { echo "usage: sh redis.sh stop DIR" >&2; exit 2; }
		redis_stop "$2"
		;;
	*)
		echo "usage: sh redis.sh start|stop DIR" >&2
		exit 2
		;;
	esac
	;;
esac
