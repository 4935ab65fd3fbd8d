#!/usr/bin/env bash
# benches/threads.sh: where the daemon's time and writes go, per message and
# per thread, at full speed (no valgrind): CPU (user and system), time spent
# runnable but waiting for a core, bytes and calls written and read (the
# store writer's writes are its log, the checkpointer's the database file),
# then the database's size and its largest tables and indexes.
#
# The same load as compare.sh: MSGS messages from distinct senders and client
# addresses, SESSIONS sessions, one per connection, replies sent to
# smtp-sink; counters read after a warm-up. SIZE sets the messages' size;
# PREFILLED names a database to copy in first (a prefilled one, say).
#
# Usage: benches/threads.sh   Environment: MSGS=10000 SESSIONS=10 SIZE=2048
#   WARMUP=300 PREFILLED=path NO_BUILD=1 REGISTRAR=path RG_SMTP=2575
#   RG_HTTP=8099 SINK_PORT=2527
# Needs smtp-sink (postfix) and python3.
set -u
. "$(dirname "$0")/lib.sh"

MSGS=${MSGS:-10000}; SESSIONS=${SESSIONS:-10}; SIZE=${SIZE:-2048}; WARMUP=${WARMUP:-300}
begin_loaded_run threads

start_loaded_registrar "$D/rg"
# One line per thread: name, then user and system ticks (stat), time on a
# core and time waiting for one in ns (schedstat), and written bytes, write
# calls and read calls (io).
snapshot() {
  local task
  for task in /proc/"$RG_PID"/task/*; do
    printf '%s %s %s %s\n' "$(tr ' ' _ < "$task/comm")" \
      "$(awk '{ print $14, $15 }' "$task/stat")" \
      "$(awk '{ print $1, $2 }' "$task/schedstat")" \
      "$(awk '/^wchar|^syscw|^syscr/ { printf "%s ", $2 }' "$task/io")"
  done
}
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

send_load "$WARMUP" w 0 > "$D/warmup.out" || die "warm-up failed: $(tail -n 3 "$D/warmup.out")"
sleep 1
snapshot > "$D/before"; machine_before=$(machine_ticks)
send_load "$MSGS" m "$WARMUP" > "$D/load.out" || die "load failed: $(tail -n 3 "$D/load.out")"
sleep 2 # the outbox sends the last replies
snapshot > "$D/after"; machine_after=$(machine_ticks)
TICK=$(getconf CLK_TCK)

note "$MSGS messages of $SIZE bytes, $SESSIONS sessions, $REGISTRAR; machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E '^codes:|^latency|rate=' "$D/load.out"
echo "machine CPU $(( (machine_after - machine_before) * 1000000 / TICK / MSGS )) us per message"
# Threads of one name (the tokio workers) are summed.
paste "$D/before" "$D/after" | awk -v m="$MSGS" -v t="$TICK" '
  { n = $1; user[n] += $10 - $2; sys[n] += $11 - $3; wait[n] += $13 - $5
    wrote[n] += $14 - $6; reads[n] += $15 - $7; writes[n] += $16 - $8 }
  END { for (n in user) if (user[n] + sys[n] > 0)
    printf "%-16s CPU %6.1f us/msg (user %6.1f, system %6.1f)  waiting for a core %6.1f us/msg  wrote %7.0f bytes/msg in %5.1f calls  %5.1f read calls/msg\n",
      n, (user[n] + sys[n]) * 1e6 / t / m, user[n] * 1e6 / t / m, sys[n] * 1e6 / t / m,
      wait[n] / 1000 / m, wrote[n] / m, writes[n] / m, reads[n] / m }' | sort
stop_registrar
python3 - "$D/rg/registrar.sqlite3" <<'PY'
import os, sqlite3, sys
path = sys.argv[1]
db = sqlite3.connect(path)
db.execute("CREATE VIRTUAL TABLE temp.pages USING dbstat")
page = db.execute("PRAGMA page_size").fetchone()[0]
largest = db.execute("SELECT name, COUNT(*) FROM temp.pages GROUP BY name ORDER BY 2 DESC LIMIT 6").fetchall()
free = db.execute("PRAGMA freelist_count").fetchone()[0]
print("database %.1f MiB (%d free pages); largest: %s" % (
    os.path.getsize(path) / 1048576, free,
    ", ".join("%s %.1f MiB" % (name, pages * page / 1048576) for name, pages in largest)))
PY
