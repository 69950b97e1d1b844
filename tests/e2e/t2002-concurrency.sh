#!/bin/sh
# Many processes on one cache at once: no lock errors, no wrong answers.
. "$(dirname "$0")/lib.sh"

commands="1 2 3 4 5 6 7 8"

test_expect_success 'setup: the expected output of each command' '
	for i in $commands; do
		seq $i 40000 >expect$i || exit 1
	done
'

test_expect_success '8 commands, each twice at once, 3 rounds: all correct, silent' '
	for round in 1 2 3; do
		for i in $commands; do
			for j in 1 2; do
				(
					st=0 &&
					cachedo --scope r$round counted c$i seq $i 40000 \
						>out$round.$i.$j 2>err$round.$i.$j || st=$?
					echo $st >status$round.$i.$j
				) &
			done
		done &&
		wait &&
		for i in $commands; do
			for j in 1 2; do
				expect_eq 0 "$(cat status$round.$i.$j)" status &&
				expect_cmp expect$i out$round.$i.$j &&
				expect_lines 0 err$round.$i.$j || exit 1
			done
		done || exit 1
	done
'

test_expect_success 'afterwards every command is a hit in every round' '
	for i in $commands; do
		n=$(count c$i) &&
		{ test $n -ge 3 && test $n -le 6 || { echo "c$i ran $n times" >&7; exit 1; }; } &&
		for round in 1 2 3; do
			cachedo --scope r$round counted c$i seq $i 40000 >out 2>err &&
			expect_cmp expect$i out &&
			expect_lines 0 err || exit 1
		done &&
		expect_count c$i $n || exit 1
	done
'

test_done
