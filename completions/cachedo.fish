# fish completion for cachedo(1).
# Installed as $(DATADIR)/fish/vendor_completions.d/cachedo.fish.

# Prints the wrapped command and its arguments so far, NUL-separated, and
# succeeds when there is one: what follows "--", or the first word that is
# neither an option nor an option's value.
function __cachedo_command
    set -l words (commandline -opc) (commandline -ct)
    set -e words[1]
    set -l valued -t -c --ttl --fail-ttl --stale --cache --env --ignore-env \
        --file --scope --max-output --lock-timeout --max-size --sign-key-file
    while set -q words[1]
        set -l w $words[1]
        if test "$w" = --
            set -e words[1]
            break
        else if contains -- $w $valued
            set -e words[1..2]
        else if string match -q -- '-*' $w
            set -e words[1]
        else
            break
        end
    end
    if test -n "$words[1]"
        string join0 -- $words
        return 0
    end
    return 1
end

function __cachedo_no_command
    not __cachedo_command >/dev/null
end

function __cachedo_complete_command
    set -l cmd (__cachedo_command | string split0)
    if set -q cmd[1]
        __fish_complete_subcommand --commandline $cmd
    else
        __fish_complete_command
    end
end

# A duration: after digits, its unit; else a few examples.
function __cachedo_duration
    set -l n (string replace -r '^--[^=]*=' '' -- (commandline -ct))
    if string match -qr '^[0-9]+$' -- $n
        printf '%s\t%s\n' {$n}ms milliseconds {$n}s seconds {$n}m minutes \
            {$n}h hours {$n}d days {$n}w weeks
    else
        printf '%s\n' 30s 5m 1h 1d
    end
end

# A size: after digits, its 1024-based unit.
function __cachedo_size
    set -l n (string replace -r '^--[^=]*=' '' -- (commandline -ct))
    if string match -qr '^[0-9]+$' -- $n
        printf '%s\n' {$n}K {$n}M {$n}G {$n}T
    else
        printf '%s\n' 64M 256M 1G
    end
end

# A cache URL: its scheme, then a path for sqlite: and dir:.
function __cachedo_url
    set -l cur (string replace -r '^--[^=]*=' '' -- (commandline -ct))
    set -l scheme (string match -r '^(sqlite|dir|exec):' -- $cur)
    if set -q scheme[1]
        __fish_complete_path (string sub -s (math (string length -- $scheme[1]) + 1) -- $cur) |
            string replace -r '^' $scheme[1]
    else
        printf '%s\t%s\n' sqlite: 'SQLite database file (the default)' \
            dir: 'a directory, one file per entry' mem: 'a directory on tmpfs' \
            redis:// 'a Redis server over TCP' unix:// 'a Redis server on a unix socket' \
            exec: 'a program speaking the helper protocol'
    end
end

complete -c cachedo -f
set -l opts -c cachedo -n __cachedo_no_command
complete $opts -s t -l ttl -x -a '(__cachedo_duration)' -d 'Keep results this long'
complete $opts -l fail-ttl -x -a '0 (__cachedo_duration)' -d 'TTL of non-zero exits'
complete $opts -l no-cache-failures -d 'Same as --fail-ttl 0'
complete $opts -l stale -x -a '(__cachedo_duration)' -d 'Serve expired results while one refresh runs'
complete $opts -l refresh -d 'Ignore a stored result: run and store'
complete $opts -l no-cache -d 'Run without reading or writing the cache'
complete $opts -s c -l cache -x -a '(__cachedo_url)' -d 'The cache backend URL'
complete $opts -l env -x -a '(set -nx)' -d 'Hash only variables matching PATTERN'
complete $opts -l ignore-env -x -a '(set -nx)' -d 'Leave matching variables out of the key'
complete $opts -l no-env -d 'Hash no variable'
complete $opts -l pure -d 'Run with only the hashed variables'
complete $opts -l tty -d 'Run the command on a pseudo-terminal'
complete $opts -l no-cwd -d 'Leave the working directory out of the key'
complete $opts -l file -r -F -d 'Hash the contents of a file too'
complete $opts -l stdin -d 'Hash standard input, then feed it on'
complete $opts -l scope -x -d 'Keep a separate namespace of entries'
complete $opts -l max-output -x -a '(__cachedo_size)' -d 'Store no output larger than SIZE'
complete $opts -l max-size -x -a '(__cachedo_size)' -d 'Keep the cache under SIZE'
complete $opts -l lock-timeout -x -a '(__cachedo_duration)' -d 'Wait this long for an identical run'
complete $opts -l sign-key-file -r -F -d 'Sign entries; serve only validly signed ones'
complete $opts -l read-only -d 'Read and replay only: never write the cache'
complete $opts -l forget -d "Remove this command's entry"
complete $opts -l warm -d "Refresh this command's entry in the background"
complete $opts -l key -d 'Print the key'
complete $opts -l explain -d 'Print what went into the key'
complete $opts -l clear -d 'Remove every entry'
complete $opts -l stats -d 'Show entries, hits, misses and time saved'
complete $opts -l list -d 'List the entries'
complete $opts -l gc -d 'Remove expired entries now'
complete $opts -l zero-stats -d 'Reset the counters of --stats'
complete $opts -l json -d '--stats and --list as JSON'
complete $opts -l show-config -d 'Print every setting, its value and its origin'
complete $opts -s v -l verbose -d 'Say hit or miss on stderr'
complete $opts -s q -l quiet -d 'No warnings'
complete $opts -s h -l help -d 'Show the help'
complete $opts -s V -l version -d 'Show the version and backends'

# The wrapped command, then its own completion.
complete -c cachedo -x -a '(__cachedo_complete_command)'
