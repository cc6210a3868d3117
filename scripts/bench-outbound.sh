#!/bin/sh
# Outbound throughput: notifications per second into an in-process go-smtp
# sink and into Postfix's smtp-sink (mailflow/sender_bench_test.go), and
# Postfix's smtp-source sending messages of the same size to the same
# smtp-sink as the yardstick. Needs Postfix's tools, for measuring only:
#
#	apt-get update && apt-get install -y postfix
#
# Usage: scripts/bench-outbound.sh [N]   (N messages per run, default 5000)
# Environment: PORT (smtp-sink port, default 2525), ROUNDS (default 3),
# MAILFLOW_BENCH_DRIVER=postgres with MAILFLOW_TEST_POSTGRES set, and
# MAILFLOW_BENCH_CONCURRENCY (sender workers, default 4).
set -eu
N=${1:-5000}
PORT=${PORT:-2525}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/mailflow.test
go test -c -o "$bin" ./mailflow/
smtp-sink -u nobody 127.0.0.1:"$PORT" 1000 &
sink=$!
trap 'kill $sink' EXIT INT TERM
sleep 1
cd mailflow

rate() { # messages, start, end (date +%s.%N)
	awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'
}

size=10035
r=1
while [ "$r" -le "$ROUNDS" ]; do
	echo "round $r, load $(cut -d' ' -f1-3 /proc/loadavg)"
	for target in go-smtp smtp-sink; do
		addr=
		[ "$target" = smtp-sink ] && addr=127.0.0.1:$PORT
		MAILFLOW_BENCH_SMTP=$addr "$bin" -test.run '^$' -test.bench 'Notifications|Sender$' -test.benchtime "${N}x" |
			awk -v t="$target" '/^Benchmark/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "notifications/s") r = $i; if ($(i+1) == "B/msg") s = $i }
				printf "  %-10s %-24s %6s notifications/s  (%s B/msg)\n", t, $1, r, s; print s > "/dev/stderr" }' 2>"$bin.size"
		size=$(tail -1 "$bin.size")
	done
	# smtp-source adds about 140 bytes of header to -l bytes of body.
	for s in 1 4; do
		a=$(date +%s.%N)
		smtp-source -d -s "$s" -l $((size - 140)) -m "$N" -f bestellungen@example.org -t test@example.org 127.0.0.1:"$PORT"
		b=$(date +%s.%N)
		printf "  %-10s %-24s %6s messages/s\n" smtp-source "-s $s -d -l $((size - 140))" "$(rate "$N" "$a" "$b")"
	done
	r=$((r + 1))
done
