#!/bin/sh
# The bash, zsh and fish completions: options, cache URL schemes, duration
# units, and the wrapped command's own completion after the options or --.
# Each shell is a prerequisite; under CI a missing one is a failure.
. "$(dirname "$0")/lib.sh"

# Nothing here depends on the cache backend: run once, with the default.
test "$test_backend" = sqlite || skip_all "independent of the backend (runs with sqlite)"

COMP=$ROOT/completions
BASH_COMPLETION=/usr/share/bash-completion/bash_completion

if command -v bash >/dev/null && [ -f "$BASH_COMPLETION" ]; then
	test_set_prereq BASH
fi
if command -v zsh >/dev/null; then test_set_prereq ZSH; fi
if command -v fish >/dev/null; then test_set_prereq FISH; fi
if [ "${CI-}" = true ]; then
	for shell in BASH ZSH FISH; do
		test_have_prereq $shell || {
			echo "Bail out! CI needs $shell (make deps installs it)"
			exit 1
		}
	done
fi

# bash_complete LINE: what bash completes at the end of LINE, one a line,
# from the completion function as bash-completion calls it.
cat >"$TMP/complete.bash" <<EOF
source $BASH_COMPLETION
source $COMP/cachedo.bash
line=\$1
COMP_LINE=\$line
COMP_POINT=\${#line}
read -ra COMP_WORDS <<<"\$line"
[[ \$line == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=\$((\${#COMP_WORDS[@]} - 1))
COMPREPLY=()
_cachedo cachedo "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD - 1]}" 2>/dev/null
printf '%s\n' "\${COMPREPLY[@]}"
EOF
bash_complete () {
	bash "$TMP/complete.bash" "$1"
}

# zsh_complete LINE: what zsh offers when Tab is pressed after LINE, in an
# interactive zsh on a pseudo-terminal, with compinit and the completion
# from completions/; compadd is wrapped to print every candidate.
cat >"$TMP/complete.zsh" <<'EOF'
zmodload zsh/zpty || exit 1
zpty z zsh -f -i
zpty -w z "PS1= RPROMPT=; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D; bindkey '^G' kill-whole-line"
zpty -w z 'compadd() { local -a m; builtin compadd -O m "$@"; print -rl -- "<m>"${^m} >/dev/tty; builtin compadd "$@" }'
# The markers are computed ($((1)) prints 1), so the echo of the typed
# line, which a terminal still in cooked mode may show at once, never
# matches them.
zpty -w z 'print RE$((1))ADY'
zpty -r z line '*RE1ADY*'
# Keys queue up in the terminal: the line is cleared and the marker typed
# only once the completion ran. The line is cleared with ^G, which a
# terminal still in cooked mode passes on (its ^U would erase the typed
# line there, before zsh ever saw the Tab).
zpty -w -n z "$2"$'\t'$'\C-g''print DO$((1))NE'$'\n'
zpty -r z out '*DO1NE*'
zpty -d z
print -r -- $out | tr '\r' '\n' | grep -a -o '<m>[^ <]*' | sed 's/<m>//' | sort -u
EOF
zsh_complete () {
	timeout 30 zsh -f "$TMP/complete.zsh" "$COMP" "$1"
}

fish_complete () {
	fish -c "source '$COMP/cachedo.fish'; complete -C '$1'" | cut -f1
}

# The wrapped command whose options are completed: ls, as bash-completion,
# zsh and fish all know it.
test_expect_success BASH 'bash: the completion file loads' '
	bash -n "$COMP/cachedo.bash" &&
	bash -c "source $BASH_COMPLETION; source $COMP/cachedo.bash; complete -p cachedo" >out &&
	expect_grep "complete -F _cachedo cachedo" out
'

test_expect_success BASH 'bash: --tt completes to --ttl and --tty, --ttl to itself' '
	bash_complete "cachedo --tt" >out &&
	expect_eq "--ttl --tty" "$(sort out | tr "\n" " " | sed "s/ \$//")" completion &&
	bash_complete "cachedo --ttl" >out &&
	expect_eq --ttl "$(cat out)" completion
'

test_expect_success BASH 'bash: every long option is offered after --' '
	bash_complete "cachedo --" >out &&
	expect_grep -x -e --ttl out &&
	expect_grep -x -e --zero-stats out &&
	expect_grep -x -e --version out
'

test_expect_success BASH 'bash: --cache completes the URL schemes' '
	bash_complete "cachedo --cache " >out &&
	for s in sqlite: dir: mem: redis:// unix:// exec:; do
		expect_grep -x -F -e "$s" out || return 1
	done &&
	bash_complete "cachedo -c re" >out &&
	expect_eq redis:// "$(cat out)" scheme
'

test_expect_success BASH 'bash: sqlite: completes a path' '
	mkdir -p "$TMP/work/cachedir" &&
	bash_complete "cachedo --cache sqlite:cached" >out &&
	expect_grep -x cachedir out
'

test_expect_success BASH 'bash: durations and sizes complete their units' '
	bash_complete "cachedo --ttl 5" >out &&
	for u in 5ms 5s 5m 5h 5d 5w; do
		expect_grep -x -e "$u" out || return 1
	done &&
	bash_complete "cachedo --max-size 10" >out &&
	expect_grep -x 10M out
'

test_expect_success BASH 'bash: after --, the wrapped command completes' '
	bash_complete "cachedo -- ls --al" >out &&
	expect_grep -x -e --all out &&
	expect_no_grep -x -e --ttl out
'

test_expect_success BASH 'bash: after the options, the wrapped command completes' '
	bash_complete "cachedo -v --ttl 5m ls --al" >out &&
	expect_grep -x -e --all out &&
	bash_complete "cachedo --ttl=5m ls --al" >out &&
	expect_grep -x -e --all out
'

test_expect_success BASH 'bash: the command itself completes from PATH' '
	bash_complete "cachedo --ttl 5m count" >out &&
	expect_grep -x counted out
'

test_expect_success ZSH 'zsh: syntax, and compinit picks up _cachedo' '
	zsh -n "$COMP/_cachedo" &&
	zsh -f -c "fpath=($COMP \$fpath); autoload -U compinit; compinit -u -D; print -r -- \$_comps[cachedo]; autoload +X _cachedo; whence -w _cachedo" >out &&
	expect_grep -x _cachedo out &&
	expect_grep "_cachedo: function" out
'

test_expect_success ZSH 'zsh: --tt completes to --ttl and --tty, --ttl to itself' '
	zsh_complete "cachedo --tt" >out &&
	expect_eq "--ttl --tty" "$(sort out | tr "\n" " " | sed "s/ \$//")" completion &&
	zsh_complete "cachedo --ttl" >out &&
	expect_eq --ttl "$(cat out)" completion
'

test_expect_success ZSH 'zsh: --cache completes the URL schemes' '
	zsh_complete "cachedo --cache " >out &&
	for s in sqlite: dir: mem: redis:// unix:// exec:; do
		expect_grep -x -F -e "$s" out || return 1
	done
'

test_expect_success ZSH 'zsh: after -- or the options, the wrapped command completes' '
	zsh_complete "cachedo -- ls --al" >out &&
	expect_grep -x -e --all out &&
	zsh_complete "cachedo -v -t 5m ls --al" >out &&
	expect_grep -x -e --all out
'

test_expect_success FISH 'fish: syntax' '
	fish -n "$COMP/cachedo.fish"
'

test_expect_success FISH 'fish: --tt completes to --ttl and --tty, --ttl to itself' '
	fish_complete "cachedo --tt" >out &&
	expect_eq "--ttl --tty" "$(sort out | tr "\n" " " | sed "s/ \$//")" completion &&
	fish_complete "cachedo --ttl" >out &&
	expect_eq --ttl "$(cat out)" completion
'

test_expect_success FISH 'fish: --cache completes the URL schemes, durations their units' '
	fish_complete "cachedo --cache " >out &&
	for s in sqlite: dir: mem: redis:// unix:// exec:; do
		expect_grep -x -F -e "$s" out || return 1
	done &&
	fish_complete "cachedo --ttl 5" >out &&
	expect_grep -x 5ms out &&
	expect_grep -x 5w out
'

test_expect_success FISH 'fish: after -- or the options, the wrapped command completes' '
	fish_complete "cachedo -- ls --al" >out &&
	expect_grep -x -e --all out &&
	fish_complete "cachedo -v --ttl 5m ls --al" >out &&
	expect_grep -x -e --all out &&
	expect_no_grep -x -e --ttl out
'

test_done
