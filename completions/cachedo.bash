# bash completion for cachedo(1); needs bash-completion 2.
# Installed as $(DATADIR)/bash-completion/completions/cachedo.

# The options that take a value, as a case pattern.
_cachedo_valued='@(-t|--ttl|--fail-ttl|--stale|-c|--cache|--env|--ignore-env|--file|--scope|--max-output|--lock-timeout|--max-size|--sign-key-file)'

_cachedo_options='--ttl --fail-ttl --no-cache-failures --stale --refresh
    --no-cache --cache --env --ignore-env --no-env --pure --tty --no-cwd --file
    --stdin --scope --max-output --max-size --lock-timeout --forget --warm
    --key --explain --clear --stats --list --gc --zero-stats --json
    --show-config --verbose --quiet --help --version --sign-key-file
    --read-only'

# Completes a duration: after digits, the units; else a few examples.
_cachedo_duration()
{
    local cur=$1 u
    if [[ $cur == +([0-9]) ]]; then
        for u in ms s m h d w; do
            COMPREPLY+=("$cur$u")
        done
    else
        COMPREPLY=($(compgen -W '30s 5m 1h 1d' -- "$cur"))
    fi
}

# Completes a size: after digits, the 1024-based units.
_cachedo_size()
{
    local cur=$1 u
    if [[ $cur == +([0-9]) ]]; then
        for u in K M G T; do
            COMPREPLY+=("$cur$u")
        done
    else
        COMPREPLY=($(compgen -W '64M 256M 1G' -- "$cur"))
    fi
}

# Completes a cache URL: the schemes, then paths for sqlite: and dir:.
_cachedo_url()
{
    local cur=$1 scheme
    case $cur in
        sqlite:* | dir:* | exec:*)
            scheme=${cur%%:*}:
            local IFS=$'\n'
            COMPREPLY=($(compgen -f -- "${cur#"$scheme"}"))
            COMPREPLY=("${COMPREPLY[@]/#/$scheme}")
            ;;
        *)
            COMPREPLY=($(compgen -W 'sqlite: dir: mem: redis:// unix:// exec:' \
                -- "$cur"))
            ;;
    esac
    compopt -o nospace
    __ltrim_colon_completions "$cur"
}

_cachedo()
{
    local cur prev words cword split
    _init_completion -s -n : || return

    # The wrapped command starts after "--" or at the first word that is
    # neither an option nor an option's value: from there on, it is that
    # command's own completion.
    local i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --)
                _command_offset $((i + 1))
                return
                ;;
            --*=*) ;;
            $_cachedo_valued | -[!-]*[tc]) ((i++)) ;;
            -*) ;;
            *)
                _command_offset $i
                return
                ;;
        esac
    done

    case $prev in
        -t | --ttl | --stale | --lock-timeout)
            _cachedo_duration "$cur"
            return
            ;;
        --fail-ttl)
            _cachedo_duration "$cur"
            [[ 0 == "$cur"* ]] && COMPREPLY+=(0)
            return
            ;;
        --max-output | --max-size)
            _cachedo_size "$cur"
            return
            ;;
        -c | --cache)
            _cachedo_url "$cur"
            return
            ;;
        --env | --ignore-env)
            COMPREPLY=($(compgen -e -- "$cur"))
            return
            ;;
        --file | --sign-key-file)
            _filedir
            return
            ;;
        --scope)
            return
            ;;
    esac
    $split && return

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$_cachedo_options" -- "$cur"))
        [[ ${COMPREPLY-} == *= ]] && compopt -o nospace
        return
    fi
    # No command yet: complete one.
    _command_offset $cword
} &&
    complete -F _cachedo cachedo

# ex: filetype=sh
