#!/usr/bin/env bash
# benches/crash.sh: crash-safety harness. The load generator runs while a
# release registrar is killed with SIGKILL at random 1-3 s intervals and
# restarted, KILLS times (default 8); then `loadgen verify` checks that every
# message answered 250 is in the database with its decision, that no
# address has two customers, that no registration lost its outbox row, and
# that `PRAGMA integrity_check` is ok.
#
# Usage: benches/crash.sh      Environment: KILLS=8 SESSIONS=10 NO_BUILD=1
#   KEEP_DIR=1 RG_SMTP=2565 RG_HTTP=8097
# Loopback only; everything started is stopped by PID on exit.
set -u
. "$(dirname "$0")/lib.sh"

KILLS=${KILLS:-8}; SESSIONS=${SESSIONS:-10}
RG_SMTP=${RG_SMTP:-2565}; RG_HTTP=${RG_HTTP:-8097}
need_free_ports "$RG_SMTP" "$RG_HTTP"
build

D=$(mktemp -d -t registrar-crash.XXXXXX)
GEN_PID=""
cleanup() {
  set +e
  [ -n "$GEN_PID" ] && { kill -TERM "$GEN_PID" 2>/dev/null; wait "$GEN_PID" 2>/dev/null; }
  stop_registrar
  if [ "${KEEP_DIR:-0}" = 1 ]; then echo "# kept $D" >&2; else rm -rf "$D"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Replies are written as .eml files: the outbox keeps working between kills.
write_config "$D/rg" "$RG_SMTP" "$RG_HTTP" "" lifted
start_registrar "$D/rg" "$RG_SMTP"
note "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# The generator outlives every kill: far more messages than it can send,
# a hard time limit, short reply timeouts and a pause after each refused
# connect; SIGTERM stops it and it writes what was answered 250.
"$LOADGEN" send --target "127.0.0.1:$RG_SMTP" --messages 10000000 --sessions "$SESSIONS" \
  --tag "c$$" --timeout 10 --error-pause-ms 50 --max-seconds $((KILLS * 4 + 60)) \
  --accepted-log "$D/accepted.tsv" > "$D/load.out" 2>&1 &
GEN_PID=$!

for kill in $(seq 1 "$KILLS"); do
  sleep "$(python3 -c "import random; print('%.2f' % random.uniform(1, 3))")"
  kill -0 "$GEN_PID" 2>/dev/null || die "the generator stopped early: $(tail -n 3 "$D/load.out")"
  kill -KILL "$RG_PID"; wait "$RG_PID" 2>/dev/null; RG_PID=""
  note "kill $kill: SIGKILL sent"
  start_registrar "$D/rg" "$RG_SMTP"
done
sleep 2
kill -TERM "$GEN_PID"; wait "$GEN_PID"; GEN_PID=""
stop_registrar
sed 's/^/# /' "$D/load.out"

"$LOADGEN" verify --db "$D/rg/registrar.sqlite3" --accepted "$D/accepted.tsv"
