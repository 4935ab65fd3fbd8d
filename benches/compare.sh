#!/usr/bin/env bash
# benches/compare.sh: issue 9's benchmark, in one invocation, with one load
# generator (benches/loadgen, release build):
#
#   anchors   the same load against Postfix's smtp-sink (the null server) and
#             a private Postfix accepting into its queue (fsync per message)
#             with delivery held;
#   floor     smtp-sink taking the same load and, at the same time, one
#             reply per message over kept-open connections (FLOOR_PER_CONN
#             per connection, MAIL, RCPT and DATA as one group, as the
#             daemon's outbox reuses its relay connections and pipelines):
#             the least any server that answers every message with one mail
#             through that sink costs on this machine;
#   registrar the same load against a release registrar on an empty
#             database (per-address, per-service and per-client limits
#             lifted, so every message is a real registration), with its
#             peak RSS;
#   prefill   the same again on a database prefilled with PREFILL past
#             messages and decisions, and its ratio to the empty rate;
#   purge     the same again on a copy of that database (made once, after
#             the prefill) with the default retention (30 days of inbound
#             records): the periodic purge deletes the older ~90% of the
#             year's records in small batches while the load runs; the
#             rate, and how many records it removed;
#   e2e       E2E_MSGS registrations with every activation mail captured by
#             a relay of our own: end-to-end rate, then 250-to-relay median
#             and p99 at half the measured accept rate;
#   idle      IDLE_CONNS idle sessions from as many client addresses
#             (default session limits), then one normal mail from another
#             address: time to 250.
#
# The summary ends the registrar's part with the targets' budget: at the
# rate the two ratio targets ask for, the machine CPU per message that every
# core busy all the time gives, what of it the floor leaves, and what the
# daemon spends beyond the floor.
#
# ROUNDS=N runs anchors, floor, registrar, prefill and purge N times, in
# that order each round (prefill and purge before registrar in even rounds),
# and the summary gives the median of each rate and of each round's ratios
# (with every round's ratio beside it). On a shared host one run's rate
# moves by tens of percent, and a ratio of two runs moves with both; rounds
# put the servers side by side in time. The database is prefilled once,
# before the rounds; each round's load adds to it (and the purge's copy
# loses what the purge removed). e2e and idle run once, after the rounds.
#
# Usage (root, for Postfix): benches/compare.sh
# Environment: PARTS="anchors floor registrar prefill purge e2e idle" ROUNDS=1 MSGS=5000 SESSIONS=10
#   PER_CONN=1 WARMUP=200 FLOOR_PER_CONN=100 PREFILL=1000000 E2E_MSGS=10000 E2E_HALF_MSGS=E2E_MSGS/2
#   PIPELINING=1 (MAIL, RCPT and DATA sent as one group, as Postfix's client
#   does, to every server alike; default: one command per round trip)
#   IDLE_CONNS=300 IDLE_DEADLINE=60 NO_BUILD=1 KEEP_DIR=1
#   ports: SINK_PORT=2526 PF_PORT=2535 RG_SMTP=2545 RG_HTTP=8095 CAPTURE_PORT=2555
# Every server it starts listens on 127.0.0.1 and is stopped on exit.
set -u
. "$(dirname "$0")/lib.sh"

PARTS=${PARTS:-anchors floor registrar prefill purge e2e idle}
ROUNDS=${ROUNDS:-1}; MSGS=${MSGS:-5000}; SESSIONS=${SESSIONS:-10}; PER_CONN=${PER_CONN:-1}; WARMUP=${WARMUP:-200}
FLOOR_PER_CONN=${FLOOR_PER_CONN:-100}
PIPE=(); [ "${PIPELINING:-0}" = 1 ] && PIPE=(--pipelining)
PREFILL=${PREFILL:-1000000}; E2E_MSGS=${E2E_MSGS:-10000}; E2E_HALF_MSGS=${E2E_HALF_MSGS:-$((E2E_MSGS / 2))}
IDLE_CONNS=${IDLE_CONNS:-300}; IDLE_DEADLINE=${IDLE_DEADLINE:-60}
SINK_PORT=${SINK_PORT:-2526}; PF_PORT=${PF_PORT:-2535}; RG_SMTP=${RG_SMTP:-2545}; RG_HTTP=${RG_HTTP:-8095}
CAPTURE_PORT=${CAPTURE_PORT:-2555}
RCPT=support@bench.test
has() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }
[ "$ROUNDS" -ge 1 ] 2>/dev/null || die "ROUNDS must be a whole number of at least 1"
# median VALUE...: their median (nothing without values), whole numbers
# as whole numbers.
median() {
  [ $# -gt 0 ] || return 0
  python3 -c "import statistics, sys
m = statistics.median(float(v) for v in sys.argv[1:])
print('%d' % m if all(v.isdigit() for v in sys.argv[1:]) else '%.1f' % m)" "$@"
}

need_free_ports "$SINK_PORT" "$PF_PORT" "$RG_SMTP" "$RG_HTTP" "$CAPTURE_PORT"
has anchors && ensure_postfix
build

D=$(mktemp -d -t registrar-compare.XXXXXX); chmod 755 "$D"
PF_MASTER=""; FLOOR_PID=""
stop_postfix() {
  if [ -z "$PF_MASTER" ] && [ -f "$D/pf/spool/pid/master.pid" ]; then PF_MASTER=$(tr -d ' \n' < "$D/pf/spool/pid/master.pid"); fi
  # Only signal it while that PID is still a Postfix master (PID reuse).
  if [ -n "$PF_MASTER" ] && [ "$(readlink "/proc/$PF_MASTER/exe" 2>/dev/null)" = /usr/lib/postfix/sbin/master ]; then
    local kids k left="" i
    kids=$(ps -o pid= --ppid "$PF_MASTER" 2>/dev/null)
    kill -TERM "$PF_MASTER"
    for i in $(seq 1 50); do kill -0 "$PF_MASTER" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PF_MASTER" 2>/dev/null && kill -KILL "$PF_MASTER"
    for i in $(seq 1 30); do
      left=""; for k in $kids; do kill -0 "$k" 2>/dev/null && left="$left $k"; done
      [ -z "$left" ] && break; sleep 0.1
    done
    for k in $left; do kill -KILL "$k" 2>/dev/null; done
  fi
  PF_MASTER=""
}
cleanup() {
  set +e
  [ -n "$LG_PID" ] && { kill -TERM "$LG_PID" 2>/dev/null; wait "$LG_PID" 2>/dev/null; }
  [ -n "$FLOOR_PID" ] && { kill -TERM "$FLOOR_PID" 2>/dev/null; wait "$FLOOR_PID" 2>/dev/null; }
  stop_registrar
  stop_sink
  stop_postfix
  if [ "${KEEP_DIR:-0}" = 1 ]; then echo "# kept $D" >&2; else rm -rf "$D"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private Postfix instance (config and queue under $D/pf) that fsyncs
# every message into its queue and parks it in hold/: acceptance only.
start_postfix() {
  local P=$D/pf
  mkdir -p "$P/etc" "$P/spool" "$P/data" "$P/log"
  chown postfix:postfix "$P/data"
  cat > "$P/etc/main.cf" <<CF
compatibility_level = 3.6
config_directory = $P/etc
queue_directory = $P/spool
data_directory = $P/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
mydomain = localdomain
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination = bench.test
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
relayhost =
biff = no
smtputf8_enable = no
maillog_file_prefixes = $P/log
maillog_file = $P/log/maillog
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
# The load comes from many 127.x.y.z addresses: no reverse DNS per client.
smtpd_peername_lookup = no
# Acceptance only: fsync'ed into the queue, then held (no delivery work).
smtpd_data_restrictions = check_client_access static:HOLD
# With delivery off, in_flow_delay would cap smtpd at ~process_limit msg/s.
in_flow_delay = 0
CF
  cat > "$P/etc/master.cf" <<CF
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF
  postfix -c "$P/etc" start >/dev/null 2>&1 || { tail -n 5 "$P/log/maillog" >&2 2>/dev/null; die "postfix start failed"; }
  PF_MASTER=$(tr -d ' \n' < "$P/spool/pid/master.pid")
  wait_port "$PF_PORT" || die "postfix did not come up"
}

# CPU time the whole machine spent busy (user, nice, system, irq, softirq),
# in clock ticks: everything the load costs, the generator's share and a
# relay's included, in whatever process it ran.
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
TICK=$(getconf CLK_TCK)

# run_load NAME PORT COUNT [extra generator args]: a warm-up, then the
# measured run; prints one line; the rate is left in $RATE and the
# machine's CPU time per message (microseconds) in $CPU_PER_MSG. On a
# machine whose cores are all busy, as they are here, that is the steadier
# figure: the rate swings with the host, the work per message much less.
SRC=0; RUN=0
run_load() {
  local name=$1 port=$2 count=$3; shift 3
  RUN=$((RUN + 1))
  if [ "$WARMUP" -gt 0 ]; then
    loadgen send --target "127.0.0.1:$port" --messages "$WARMUP" --sessions "$SESSIONS" \
      --per-connection "$PER_CONN" --rcpt "$RCPT" --tag "w$RUN$$" --source-offset "$SRC" "${PIPE[@]}" "$@" \
      > "$D/$name.warmup" 2>&1 || die "warm-up against $name failed: $(tail -n 3 "$D/$name.warmup")"
    SRC=$((SRC + WARMUP))
  fi
  local before; before=$(busy_ticks)
  loadgen send --target "127.0.0.1:$port" --messages "$count" --sessions "$SESSIONS" \
    --per-connection "$PER_CONN" --rcpt "$RCPT" --tag "m$RUN$$" --source-offset "$SRC" "${PIPE[@]}" "$@" \
    > "$D/$name.out" 2>&1 || die "load against $name failed: $(tail -n 3 "$D/$name.out")"
  CPU_PER_MSG=$(( ($(busy_ticks) - before) * 1000000 / TICK / count ))
  SRC=$((SRC + count))
  RATE=$(field rate "$D/$name.out")
  printf '%-22s %9s msg/s   %6s us CPU/msg   %s   %s\n' "$name" "$RATE" "$CPU_PER_MSG" \
    "$(grep '^codes:' "$D/$name.out")" "$(grep -o 'p50=.*' "$D/$name.out")"
}

note "load: $MSGS messages, each from a distinct sender and client address, $SESSIONS sessions, $PER_CONN per connection, pipelining ${PIPELINING:-0}, warm-up $WARMUP"
note "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Each round's rates and machine CPU per message, by part.
SINK_RATES=(); PF_RATES=(); FLOOR_RATES=(); RG_RATES=()
SINK_CPUS=(); PF_CPUS=(); FLOOR_CPUS=(); RG_CPUS=()
RG1M_RATES=(); RSS=""
relay=""
# The registrar on an empty database, then (prefill) on the prefilled one:
# each round starts a daemon on a database of its own, or on the one
# prefilled database, which grows by each round's load.
run_empty() {
  write_config "$D/rg$ROUND" "$RG_SMTP" "$RG_HTTP" "$relay" lifted
  start_registrar "$D/rg$ROUND" "$RG_SMTP"
  run_load registrar "$RG_SMTP" "$MSGS"; RG_RATES+=("$RATE"); RG_CPUS+=("$CPU_PER_MSG")
  rss=$(registrar_peak_rss_mib)
  note "registrar peak RSS $rss MiB"
  RSS=$(python3 -c "import sys; print(max(sys.argv[1:], key=float))" "$rss" ${RSS:+"$RSS"})
  stop_registrar
}
run_prefilled() {
  write_config "$D/rg1m" "$RG_SMTP" "$RG_HTTP" "$relay" lifted
  start_registrar "$D/rg1m" "$RG_SMTP"
  run_load "registrar+$PREFILL" "$RG_SMTP" "$MSGS"; RG1M_RATES+=("$RATE")
  note "registrar peak RSS on the prefilled database $(registrar_peak_rss_mib) MiB"
  stop_registrar
}
PURGE_RATES=(); PURGED=()
inbound_rows() {
  python3 -c "import sqlite3,sys; print(sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True).execute('SELECT COUNT(*) FROM inbound').fetchone()[0])" "$1"
}
# The same load on a copy of the prefilled database, with the default
# retention: the purge deletes the older records while the load runs.
run_purging() {
  local before after
  before=$(inbound_rows "$D/purge/registrar.sqlite3")
  INBOUND_RETENTION=30 write_config "$D/purge" "$RG_SMTP" "$RG_HTTP" "$relay" lifted
  start_registrar "$D/purge" "$RG_SMTP"
  run_load "registrar+purge" "$RG_SMTP" "$MSGS"; PURGE_RATES+=("$RATE")
  stop_registrar
  after=$(inbound_rows "$D/purge/registrar.sqlite3")
  PURGED+=("$((before + WARMUP + MSGS - after))")
  note "purge: $before inbound records before, $after after (the purge removed ${PURGED[-1]} while the load ran)"
}
if has prefill || has purge; then
  mkdir -p "$D/rg1m"
  "$LOADGEN" prefill --db "$D/rg1m/registrar.sqlite3" --messages "$PREFILL" --service bench --rcpt "$RCPT" \
    | sed 's/^/# /' || die "prefill failed"
  if has purge; then mkdir -p "$D/purge" && cp "$D/rg1m/registrar.sqlite3" "$D/purge/" || die "cannot copy the prefilled database"; fi
  # The prefill writes the database without syncing it: let the disk take
  # its gigabyte first, so that no load waits behind that write-back.
  sync
fi
for ROUND in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && note "round $ROUND of $ROUNDS"
  if has anchors; then
    [ -z "$SINK_PID" ] && start_sink
    start_postfix
    run_load smtp-sink "$SINK_PORT" "$MSGS"; SINK_RATES+=("$RATE"); SINK_CPUS+=("$CPU_PER_MSG")
    run_load postfix-hold "$PF_PORT" "$MSGS"; PF_RATES+=("$RATE"); PF_CPUS+=("$CPU_PER_MSG")
    note "postfix hold queue holds $(find "$D/pf/spool/hold" -type f | wc -l) messages"
    stop_postfix
    # Postfix's queue files are still being written back: let the disk settle
    # before the next part, so that it does not pay for them.
    sync; sleep 2
  fi

  if has floor; then
    [ -z "$SINK_PID" ] && start_sink
    before=$(busy_ticks); started=$(date +%s.%N)
    "$LOADGEN" send --target "127.0.0.1:$SINK_PORT" --messages "$MSGS" --sessions "$SESSIONS" \
      --per-connection "$PER_CONN" --rcpt "$RCPT" --tag "f$ROUND$$" --source-offset "$SRC" "${PIPE[@]}" \
      > "$D/floor.out" 2>&1 &
    FLOOR_PID=$!
    loadgen send --target "127.0.0.1:$SINK_PORT" --messages "$MSGS" --sessions "$SESSIONS" \
      --per-connection "$FLOOR_PER_CONN" --rcpt "customer@bench.test" --tag "r$ROUND$$" --source-offset "$((SRC + MSGS))" \
      --pipelining > "$D/floor-replies.out" 2>&1 || die "the floor's replies failed: $(tail -n 3 "$D/floor-replies.out")"
    wait "$FLOOR_PID" || die "the floor's load failed: $(tail -n 3 "$D/floor.out")"
    FLOOR_PID=""
    ended=$(date +%s.%N)
    SRC=$((SRC + 2 * MSGS))
    FLOOR_CPUS+=("$(( ($(busy_ticks) - before) * 1000000 / TICK / MSGS ))")
    FLOOR_RATES+=("$(python3 -c "import sys; print('%.1f' % (int(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2]))))" "$MSGS" "$started" "$ended")")
    printf '%-22s %9s msg/s   %6s us CPU/msg   %s   replies: %s\n' "floor" "${FLOOR_RATES[-1]}" "${FLOOR_CPUS[-1]}" \
      "$(grep '^codes:' "$D/floor.out")" "$(grep '^codes:' "$D/floor-replies.out" | sed 's/^codes: //')"
  fi

  # Replies go to smtp-sink (the daemon's outbox really sends), started here
  # when the anchors did not run; without it, into .eml files (one file
  # created per reply, which on a busy ext4 can cost more than the intake).
  if [ -z "$SINK_PID" ] && command -v smtp-sink >/dev/null && { has registrar || has prefill || has purge; }; then
    start_sink
  fi
  relay=""; [ -n "$SINK_PID" ] && relay="smtp://127.0.0.1:$SINK_PORT"
  # The two databases take turns at going first: in a pair of runs back to
  # back, the first was often the faster.
  if [ $((ROUND % 2)) = 0 ]; then has prefill && run_prefilled; has purge && run_purging; fi
  if has registrar; then run_empty; fi
  if [ $((ROUND % 2)) = 1 ]; then has prefill && run_prefilled; has purge && run_purging; fi
done
# One figure per part: the median of its rounds (the run itself, with one).
SINK_RATE=$(median "${SINK_RATES[@]}"); SINK_CPU=$(median "${SINK_CPUS[@]}")
PF_RATE=$(median "${PF_RATES[@]}"); PF_CPU=$(median "${PF_CPUS[@]}")
FLOOR_RATE=$(median "${FLOOR_RATES[@]}"); FLOOR_CPU=$(median "${FLOOR_CPUS[@]}")
RG_RATE=$(median "${RG_RATES[@]}"); RG_CPU=$(median "${RG_CPUS[@]}")

RG1M_RATE=$(median "${RG1M_RATES[@]}"); PURGE_RATE=$(median "${PURGE_RATES[@]}")

E2E_LINE=""; HALF_LINE=""
if has e2e; then
  write_config "$D/e2e" "$RG_SMTP" "$RG_HTTP" "smtp://127.0.0.1:$CAPTURE_PORT" lifted
  start_registrar "$D/e2e" "$RG_SMTP"
  loadgen e2e --capture "127.0.0.1:$CAPTURE_PORT" --target "127.0.0.1:$RG_SMTP" --messages "$E2E_MSGS" \
    --sessions "$SESSIONS" --per-connection "$PER_CONN" --tag "e$$" --source-offset "$SRC" "${PIPE[@]}" \
    > "$D/e2e.out" 2>&1 || die "e2e run failed: $(tail -n 3 "$D/e2e.out")"
  SRC=$((SRC + E2E_MSGS))
  sed 's/^/# /' "$D/e2e.out"
  E2E_LINE=$(grep '^e2e_rate=' "$D/e2e.out")
  half=$(python3 -c "print('%.1f' % (float('$(field accept_rate "$D/e2e.out")' or 0) / 2))")
  loadgen e2e --capture "127.0.0.1:$CAPTURE_PORT" --target "127.0.0.1:$RG_SMTP" --messages "$E2E_HALF_MSGS" \
    --sessions "$SESSIONS" --per-connection "$PER_CONN" --tag "h$$" --source-offset "$SRC" --rate "$half" "${PIPE[@]}" \
    > "$D/e2e-half.out" 2>&1 || die "e2e run at half rate failed: $(tail -n 3 "$D/e2e-half.out")"
  SRC=$((SRC + E2E_HALF_MSGS))
  sed 's/^/# half rate: /' "$D/e2e-half.out"
  HALF_LINE=$(grep '^e2e_rate=' "$D/e2e-half.out")
  stop_registrar
fi

IDLE_LINE=""
if has idle; then
  write_config "$D/idle" "$RG_SMTP" "$RG_HTTP" "" default
  start_registrar "$D/idle" "$RG_SMTP"
  loadgen idle --target "127.0.0.1:$RG_SMTP" --connections "$IDLE_CONNS" --deadline "$IDLE_DEADLINE" \
    > "$D/idle.out" 2>&1 || die "idle stress failed: $(tail -n 3 "$D/idle.out")"
  sed 's/^/# /' "$D/idle.out"
  IDLE_LINE=$(grep '^idle_time_to_250=' "$D/idle.out")
  stop_registrar
fi

echo
echo "== summary (machine load average now $(cut -d' ' -f1-3 /proc/loadavg))$([ "$ROUNDS" -gt 1 ] && echo ", medians of $ROUNDS rounds") =="
[ -n "$SINK_RATE" ] && echo "smtp-sink               $SINK_RATE msg/s   $SINK_CPU us machine CPU per message"
[ -n "$PF_RATE" ] && echo "postfix (queue, held)   $PF_RATE msg/s   $PF_CPU us machine CPU per message"
if [ -n "$FLOOR_RATE" ]; then
  echo "floor (sink + replies)  $FLOOR_RATE msg/s   $FLOOR_CPU us machine CPU per message and its reply"
  [ -n "$SINK_RATE" ] && echo "  floor / smtp-sink     $(ratio "${FLOOR_RATES[*]}" "${SINK_RATES[*]}")   (what no server that replies through the sink can beat)"
fi
if [ -n "$RG_RATE" ]; then
  echo "registrar (empty db)    $RG_RATE msg/s   $RG_CPU us machine CPU per message (its replies sent too)   peak RSS ${RSS} MiB (target < 100)"
  [ -n "$PF_RATE" ] && echo "  registrar / postfix   $(ratio "${RG_RATES[*]}" "${PF_RATES[*]}")   (target >= 3)"
  [ -n "$SINK_RATE" ] && echo "  registrar / smtp-sink $(ratio "${RG_RATES[*]}" "${SINK_RATES[*]}")   (target >= 0.50)"
  [ -n "$FLOOR_RATE" ] && echo "  registrar / floor     $(ratio "${RG_RATES[*]}" "${FLOOR_RATES[*]}")"
  # What the two ratio targets leave for the daemon's own work: at the rate
  # they ask for, every core busy all the time gives so much machine CPU per
  # message; the floor spends its part on the two SMTP conversations every
  # answered message needs, and the rest is all the daemon may spend on
  # parsing, policy, its transaction and composing the reply.
  if [ -n "$PF_RATE" ] && [ -n "$SINK_RATE" ] && [ -n "$FLOOR_RATE" ]; then
    python3 -c "import sys
pf, sink, floor, rg, cpus = (float(v) for v in sys.argv[1:])
rate = max(3 * pf, 0.5 * sink)
budget = cpus * 1e6 / rate
print('  targets\' budget        %.0f msg/s leaves <= %.0f us machine CPU per message with every core busy: %.0f beyond the floor; registrar spends %.0f beyond it'
      % (rate, budget, budget - floor, rg - floor))" "$PF_RATE" "$SINK_RATE" "$FLOOR_CPU" "$RG_CPU" "$(nproc)"
  fi
fi
if [ -n "$RG1M_RATE" ]; then
  echo "registrar ($PREFILL past) $RG1M_RATE msg/s"
  [ -n "$RG_RATE" ] && echo "  prefilled / empty     $(ratio "${RG1M_RATES[*]}" "${RG_RATES[*]}")   (target >= 0.90)"
fi
if [ -n "$PURGE_RATE" ]; then
  echo "registrar while purging $PURGE_RATE msg/s   (inbound records the purge removed while the load ran: ${PURGED[*]})"
  [ -n "$RG_RATE" ] && echo "  purging / empty       $(ratio "${PURGE_RATES[*]}" "${RG_RATES[*]}")"
fi
if [ -n "$E2E_LINE" ]; then
  echo "end to end ($E2E_MSGS)   $E2E_LINE"
  echo "  e2e / accept          $(ratio "$(echo "$E2E_LINE" | grep -o 'e2e_rate=[^ ]*' | cut -d= -f2)" "$(echo "$E2E_LINE" | grep -o 'accept_rate=[^ ]*' | cut -d= -f2)")   (target >= 0.80)"
  echo "  at half rate          $HALF_LINE   (target p99 < 1000 ms)"
fi
[ -n "$IDLE_LINE" ] && echo "idle stress ($IDLE_CONNS)       $IDLE_LINE s   (target <= 15)"
exit 0
