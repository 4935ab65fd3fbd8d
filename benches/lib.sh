# benches/lib.sh: shared pieces of compare.sh and crash.sh (sourced, not run).
# Everything here stays on loopback, and every process started is stopped by
# its PID (see stop_all, called from the EXIT trap of each script).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REGISTRAR=${REGISTRAR:-$REPO/target/release/registrar}
LOADGEN=${LOADGEN:-$REPO/target/release/examples/loadgen}
export PATH=$PATH:/usr/sbin

die() { echo "${0##*/}: $*" >&2; exit 1; }
note() { echo "# $*"; }

port_busy() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
wait_port() { # PORT [TENTHS]
  local i
  for i in $(seq 1 "${2:-150}"); do port_busy "$1" && return 0; sleep 0.1; done
  return 1
}
need_free_ports() { local p; for p in "$@"; do port_busy "$p" && die "127.0.0.1:$p is already in use"; done; return 0; }

build() {
  [ "${NO_BUILD:-0}" = 1 ] && return 0
  (cd "$REPO" && cargo build --release --locked --bin registrar --example loadgen) || die "release build failed"
}

# Postfix's smtp-sink and a private Postfix need Debian's postfix package.
# "No configuration" keeps the package from setting up (and starting) a
# system-wide instance.
ensure_postfix() {
  if command -v smtp-sink >/dev/null && command -v postfix >/dev/null; then return 0; fi
  [ "$(id -u)" = 0 ] || die "postfix is missing and installing it needs root"
  note "installing postfix (apt-get)"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix >/dev/null 2>&1; } ||
    die "apt-get install postfix failed"
  command -v smtp-sink >/dev/null || die "smtp-sink still missing after installing postfix"
}

# --- smtp-sink: the relay the daemon's replies go to (and the null server) ---
SINK_PID=""
# start_sink: Postfix's smtp-sink on 127.0.0.1:$SINK_PORT.
start_sink() {
  ( cd / && exec smtp-sink -u nobody 127.0.0.1:"$SINK_PORT" 256 ) &
  SINK_PID=$!
  wait_port "$SINK_PORT" || die "smtp-sink did not come up"
}

stop_sink() {
  [ -n "$SINK_PID" ] || return 0
  kill "$SINK_PID" 2>/dev/null
  wait "$SINK_PID" 2>/dev/null
  SINK_PID=""
}

# --- registrar --------------------------------------------------------------
RG_PID=""
# write_config DIR SMTP_PORT HTTP_PORT RELAY LIMITS(lifted|default)
write_config() {
  local dir=$1 smtp=$2 http=$3 relay=$4 limits=$5
  mkdir -p "$dir"
  {
    echo "[smtp]"
    echo "listen = \"127.0.0.1:$smtp\""
    echo "shutdown_grace_secs = 5"
    if [ "$limits" = lifted ]; then
      # Every message comes from its own client address, but the caps per
      # client and per session are lifted too, so that K messages per
      # connection and the crash harness's reconnects are never refused.
      echo "max_sessions_per_ip = 1000000"
      echo "max_connections_per_ip_per_minute = 1000000"
      echo "max_messages_per_session = 1000000"
    fi
    echo "[http]"
    echo "listen = \"127.0.0.1:$http\""
    echo "public_url = \"http://127.0.0.1:$http\""
    # No admin listener unless a script asks for one (ADMIN_LISTEN, on
    # loopback): a fixed port could meet another daemon's.
    echo "[admin]"
    echo "listen = \"${ADMIN_LISTEN:-}\""
    echo "[store]"
    echo "path = \"$dir/registrar.sqlite3\""
    # Every message's raw bytes kept, as before the quotas (issue 10): the
    # load measures intake, not what the quota spares.
    echo "raw_bytes_per_client_per_hour = 9223372036854775807"
    echo "raw_bytes_per_hour = 9223372036854775807"
    # The prefilled history spans a year: it must all stay in the database
    # while the load is measured, not leave through the purge meanwhile
    # (INBOUND_RETENTION=30, the default, lets the purge run during the load).
    echo "inbound_retention_days = ${INBOUND_RETENTION:-400}"
    echo "[outbound]"
    echo "relay = \"$relay\""
    echo "folder = \"$dir/outbound\""
    echo "retry_base_secs = 1"
    echo "retry_max_secs = 5"
    echo "[policy]"
    # Every message a real registration: no per-address, per-domain,
    # per-network or per-service reply limit stops one (issues 9 and 10),
    # and the circuit breaker lets every new sender through.
    echo "reply_interval_minutes = 0"
    echo "max_replies_per_day = 1000000"
    echo "service_replies_per_day = 4000000000"
    echo "domain_replies_per_day = 4000000000"
    echo "network_replies_per_day = 4000000000"
    echo "[circuit_breaker]"
    echo "new_senders_per_minute = 4000000000"
    echo "[[services]]"
    echo "id = \"bench\""
    echo "name = \"Bench\""
    echo "support_addresses = [\"support@bench.test\"]"
    echo "policy = { sender_auth = \"off\" }"
  } > "$dir/registrar.toml"
}

# start_registrar DIR SMTP_PORT
start_registrar() {
  (cd "$1" && RUST_LOG=${RG_LOG:-warn} exec "$REGISTRAR" serve --config "$1/registrar.toml") >> "$1/registrar.log" 2>&1 &
  RG_PID=$!
  wait_port "$2" 300 || { tail -n 5 "$1/registrar.log" >&2; die "registrar did not come up on 127.0.0.1:$2"; }
}

# begin_loaded_run NAME: what threads.sh and pages.sh do first: the ports
# (RG_SMTP, RG_HTTP, SINK_PORT) free, postfix there, the release build made,
# and a folder $D that goes, with the daemon and the sink, when the script
# exits.
begin_loaded_run() {
  RG_SMTP=${RG_SMTP:-2575}; RG_HTTP=${RG_HTTP:-8099}; SINK_PORT=${SINK_PORT:-2527}
  ensure_postfix
  need_free_ports "$RG_SMTP" "$RG_HTTP" "$SINK_PORT"
  build
  D=$(mktemp -d -t "registrar-$1.XXXXXX"); chmod 755 "$D"
  trap end_loaded_run EXIT
  trap 'exit 130' INT TERM
}
end_loaded_run() {
  set +e
  stop_registrar
  stop_sink
  rm -rf "$D"
}

# start_loaded_registrar DIR: smtp-sink, then registrar in DIR with every
# limit lifted, replying to the sink, on a copy of $PREFILLED when it is set
# (threads.sh, pages.sh).
start_loaded_registrar() {
  start_sink
  write_config "$1" "$RG_SMTP" "$RG_HTTP" "smtp://127.0.0.1:$SINK_PORT" lifted
  if [ -n "${PREFILLED:-}" ]; then
    cp "$PREFILLED" "$1/registrar.sqlite3" || die "cannot copy $PREFILLED"
    sync
  fi
  start_registrar "$1" "$RG_SMTP"
}

# send_load COUNT TAG OFFSET: COUNT messages of $SIZE bytes from distinct
# senders and client addresses (from OFFSET on), $SESSIONS sessions, one
# message per connection.
send_load() {
  "$LOADGEN" send --target "127.0.0.1:$RG_SMTP" --messages "$1" --sessions "$SESSIONS" \
    --per-connection 1 --size "$SIZE" --rcpt support@bench.test --tag "$2$$" --source-offset "$3"
}

# Peak resident set of the running daemon, in MiB.
registrar_peak_rss_mib() {
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$RG_PID/status" 2>/dev/null
}

stop_registrar() {
  [ -n "$RG_PID" ] || return 0
  kill -TERM "$RG_PID" 2>/dev/null
  local i
  for i in $(seq 1 150); do kill -0 "$RG_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$RG_PID" 2>/dev/null && kill -KILL "$RG_PID" 2>/dev/null
  wait "$RG_PID" 2>/dev/null
  RG_PID=""
}

# --- the generator -------------------------------------------------------------
LG_PID=""
# loadgen ARGS... (output to stdout; runs in the background so a signal to
# the script is acted on at once and the generator is stopped by PID)
loadgen() {
  "$LOADGEN" "$@" & LG_PID=$!
  wait "$LG_PID"; local rc=$?; LG_PID=""; return $rc
}
# field NAME FILE: the value of NAME=value in the generator's output.
field() { grep -o "\b$1=[^ ]*" "$2" | tail -n1 | cut -d= -f2; }
# ratio "A1 A2 ..." "B1 B2 ...": A/B to two decimals; over several rounds,
# the median of the rounds' A/B with each round's beside it.
ratio() {
  python3 -c "import statistics, sys
r = [float(a) / float(b) for a, b in zip(sys.argv[1].split(), sys.argv[2].split()) if float(b)]
if not r: print('n/a'); sys.exit()
m = '%.2f' % statistics.median(r)
print(m if len(r) == 1 else m + ' (rounds: ' + ' '.join('%.2f' % x for x in r) + ')')" "$1" "$2"
}
