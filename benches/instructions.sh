#!/usr/bin/env bash
# benches/instructions.sh: instructions the daemon executes per message, per
# thread, counted by valgrind's callgrind. On a shared host the rate and the
# CPU time of compare.sh move by tens of percent between two runs of one
# build; an instruction count moves by about one. It counts user space only
# (no kernel time: syscalls and TCP are not in it), and valgrind counts a
# `rep movsb` copy per byte, so it overstates what copying costs. Valgrind
# also hides the CPU's SHA extensions, so SHA-256 runs in software under it
# (a fifth of a tokio thread's count, where `perf` finds under 1 %
# natively). Compare two builds with it, and confirm with compare.sh in
# interleaved runs.
#
# The same load as compare.sh, at valgrind's pace: MSGS messages from
# distinct senders and client addresses, 10 sessions, one per connection,
# replies sent to smtp-sink; counters zeroed after a warm-up.
#
# Usage: benches/instructions.sh   Environment: MSGS=1000 WARMUP=300
#   NO_BUILD=1 REGISTRAR=path KEEP_DIR=1 RG_SMTP=2575 RG_HTTP=8099 SINK_PORT=2527
# Needs valgrind (apt-get install valgrind) and smtp-sink (postfix).
set -u
. "$(dirname "$0")/lib.sh"

MSGS=${MSGS:-1000}; WARMUP=${WARMUP:-300}
RG_SMTP=${RG_SMTP:-2575}; RG_HTTP=${RG_HTTP:-8099}; SINK_PORT=${SINK_PORT:-2527}
command -v callgrind_control >/dev/null || die "valgrind is missing (apt-get install valgrind)"
ensure_postfix
need_free_ports "$RG_SMTP" "$RG_HTTP" "$SINK_PORT"
build

D=$(mktemp -d -t registrar-instructions.XXXXXX); chmod 755 "$D"
cleanup() {
  set +e
  stop_registrar
  stop_sink
  if [ "${KEEP_DIR:-0}" = 1 ]; then echo "# kept $D" >&2; else rm -rf "$D"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_sink

write_config "$D/rg" "$RG_SMTP" "$RG_HTTP" "smtp://127.0.0.1:$SINK_PORT" lifted
(cd "$D/rg" && RUST_LOG=warn exec valgrind --tool=callgrind --separate-threads=yes \
  --callgrind-out-file="$D/callgrind.out" "$REGISTRAR" serve --config "$D/rg/registrar.toml") \
  >> "$D/rg/registrar.log" 2>&1 &
RG_PID=$!
wait_port "$RG_SMTP" 900 || { tail -n 5 "$D/rg/registrar.log" >&2; die "registrar did not come up under valgrind"; }

send() { # COUNT TAG OFFSET
  "$LOADGEN" send --target "127.0.0.1:$RG_SMTP" --messages "$1" --sessions 10 --per-connection 1 \
    --rcpt support@bench.test --tag "$2$$" --source-offset "$3"
}
send "$WARMUP" w 0 > "$D/warmup.out" || die "warm-up failed: $(tail -n 3 "$D/warmup.out")"
sleep 2
# Thread names in the order the threads were made, which is valgrind's.
THREADS=$(for task in $(ls "/proc/$RG_PID/task" | sort -n); do cat "/proc/$RG_PID/task/$task/comm"; done)
callgrind_control -z "$RG_PID" > /dev/null 2>&1
send "$MSGS" m "$WARMUP" > "$D/load.out" || die "load failed: $(tail -n 3 "$D/load.out")"
sleep 3 # the outbox sends the last replies
callgrind_control -d "$RG_PID" > /dev/null 2>&1
sleep 1

note "$MSGS messages ($(grep '^codes:' "$D/load.out")), warm-up $WARMUP, $REGISTRAR"
total=0
for file in "$D"/callgrind.out.1-*; do
  thread=${file##*-}; thread=$((10#$thread))
  name=$(echo "$THREADS" | sed -n "${thread}p")
  count=$(grep -m1 -E '^(summary|totals):' "$file" | cut -d' ' -f2)
  per=$(( ${count:-0} / MSGS ))
  total=$((total + per))
  [ "$per" -gt 0 ] && printf '%-16s thread %2d  %9d instructions per message\n' "$name" "$thread" "$per"
done
printf '%-26s %9d instructions per message\n' "all threads" "$total"
