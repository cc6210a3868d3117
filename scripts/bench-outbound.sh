#!/bin/sh
# Outbound throughput: notifications per second into an in-process go-smtp
# sink and into Postfix's smtp-sink (mailflow/sender_bench_test.go: the
# whole path from order to delivery; delivery of queued notifications; and
# the sender's SMTP side alone, without the database), and
# Postfix's smtp-source sending messages of the same size to the same
# smtp-sink as the yardstick. Needs Postfix's tools, for measuring only:
#
#	apt-get update && apt-get install -y postfix
#
# Besides the rates it prints the CPU time per message of the sending side
# (mailflow's test process; smtp-source), of the PostgreSQL server (with
# MAILFLOW_BENCH_DRIVER=postgres: every postgres process on the machine, so
# keep other PostgreSQL work off it) and of smtp-sink: steadier than the
# rates when other work shares the machine.
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
tmp=$(mktemp -d)
bin=$tmp/mailflow.test
go test -c -o "$bin" ./mailflow/
smtp-sink -u nobody 127.0.0.1:"$PORT" 1000 &
sink=$!
trap 'kill $sink; rm -rf "$tmp"' EXIT INT TERM
sleep 1
cd mailflow
hz=$(getconf CLK_TCK)

sinkcpu() { # smtp-sink's CPU time so far, in clock ticks
	awk '{ print $14 + $15 }' /proc/"$sink"/stat
}

per() { # value, count: value per count, rounded
	awk -v v="$1" -v n="$2" 'BEGIN { printf "%.0f", v / n }'
}

size=10035
r=1
while [ "$r" -le "$ROUNDS" ]; do
	echo "round $r, load $(cut -d' ' -f1-3 /proc/loadavg)"
	for target in go-smtp smtp-sink; do
		addr=
		[ "$target" = smtp-sink ] && addr=127.0.0.1:$PORT
		for bench in Notifications Sender SenderSMTP; do
			s0=$(sinkcpu)
			MAILFLOW_BENCH_SMTP=$addr "$bin" -test.run '^$' -test.bench "^Benchmark$bench\$" -test.benchtime "${N}x" >"$tmp/out"
			s1=$(sinkcpu)
			awk -v t="$target" -v sk="$(per "$(((s1 - s0) * 1000000))" "$((N * hz))")" '/^Benchmark/ {
				for (i = 1; i <= NF; i++) { if ($(i+1) == "notifications/s") r = $i; if ($(i+1) == "B/msg") s = $i; if ($(i+1) ~ /^cpu-/) c = $i; if ($(i+1) ~ /^db-cpu-/) d = $i }
				printf "  %-10s %-26s %6s msg/s   cpu %5s µs/msg", t, $1, r, c
				if (d != "") printf " + db %s", d
				if (t == "smtp-sink") printf " + sink %s", sk
				printf "   (%s B/msg)\n", s }' "$tmp/out"
			size=$(awk '/^Benchmark/ { for (i = 1; i <= NF; i++) if ($(i+1) == "B/msg") print $i }' "$tmp/out")
		done
	done
	# smtp-source adds about 140 bytes of header to -l bytes of body.
	for s in 1 4; do
		s0=$(sinkcpu)
		a=$(date +%s.%N)
		/usr/bin/time -f "%U %S" -o "$tmp/time" smtp-source -d -s "$s" -l $((size - 140)) -m "$N" \
			-f bestellungen@example.org -t test@example.org 127.0.0.1:"$PORT"
		b=$(date +%s.%N)
		s1=$(sinkcpu)
		awk -v n="$N" -v a="$a" -v b="$b" -v s="$s" -v sk="$(per "$(((s1 - s0) * 1000000))" "$((N * hz))")" -v l=$((size - 140)) '{
			printf "  %-10s %-26s %6.0f msg/s   cpu %5.0f µs/msg + sink %s   (-l %s)\n", "smtp-source", "-d -s " s, n / (b - a), ($1 + $2) * 1000000 / n, sk, l }' "$tmp/time"
	done
	r=$((r + 1))
done
