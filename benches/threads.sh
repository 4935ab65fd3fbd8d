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
# It also reads the store writer's group commits from /metrics (an admin
# listener on RG_ADMIN): how many, jobs per commit (the outbox's records of
# deliveries included), and the time from BEGIN to the end of COMMIT, in
# all (how busy the writer was) and per commit.
#
# Usage: benches/threads.sh   Environment: MSGS=10000 SESSIONS=10 SIZE=2048
#   WARMUP=300 PREFILLED=path NO_BUILD=1 REGISTRAR=path RG_SMTP=2575
#   RG_HTTP=8099 RG_ADMIN=9479 SINK_PORT=2527
# Needs smtp-sink (postfix) and python3.
set -u
. "$(dirname "$0")/lib.sh"

MSGS=${MSGS:-10000}; SESSIONS=${SESSIONS:-10}; SIZE=${SIZE:-2048}; WARMUP=${WARMUP:-300}
RG_ADMIN=${RG_ADMIN:-9479}
need_free_ports "$RG_ADMIN"
begin_loaded_run threads

ADMIN_LISTEN=127.0.0.1:$RG_ADMIN start_loaded_registrar "$D/rg"
# The group-commit sums and counts, one "name value" per line.
commit_figures() {
  python3 - "$RG_ADMIN" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode()
for line in text.splitlines():
    name = line.split(" ")[0]
    if name in ("registrar_store_batch_jobs_sum", "registrar_store_commit_seconds_sum",
                "registrar_store_commit_seconds_count"):
        print(name, line.split(" ")[1])
PY
}
# One line per thread: its id and name, then user and system ticks (stat),
# time on a core and time waiting for one in ns (schedstat), and written
# bytes, read calls and write calls (io).
snapshot() {
  local task
  for task in /proc/"$RG_PID"/task/*; do
    printf '%s %s %s %s %s\n' "${task##*/}" "$(tr ' ' _ < "$task/comm")" \
      "$(awk '{ print $14, $15 }' "$task/stat")" \
      "$(awk '{ print $1, $2 }' "$task/schedstat")" \
      "$(awk '/^wchar|^syscw|^syscr/ { printf "%s ", $2 }' "$task/io")"
  done
}
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

send_load "$WARMUP" w 0 > "$D/warmup.out" || die "warm-up failed: $(tail -n 3 "$D/warmup.out")"
sleep 1
snapshot > "$D/before"; machine_before=$(machine_ticks); commit_figures > "$D/commits.before"
send_load "$MSGS" m "$WARMUP" > "$D/load.out" || die "load failed: $(tail -n 3 "$D/load.out")"
sleep 2 # the outbox sends the last replies
snapshot > "$D/after"; machine_after=$(machine_ticks); commit_figures > "$D/commits.after"
TICK=$(getconf CLK_TCK)

note "$MSGS messages of $SIZE bytes, $SESSIONS sessions, $REGISTRAR; machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E '^codes:|^latency|rate=' "$D/load.out"
echo "machine CPU $(( (machine_after - machine_before) * 1000000 / TICK / MSGS )) us per message"
# Threads of one name (the tokio workers) are summed.
# Threads are matched by id: the blocking pool starts and ends threads
# between the two snapshots (one that started meanwhile counts from zero).
awk -v m="$MSGS" -v t="$TICK" '
  NR == FNR { for (i = 3; i <= 9; i++) before[$1, i] = $i; next }
  { n = $2; user[n] += $3 - before[$1, 3]; sys[n] += $4 - before[$1, 4]; wait[n] += $6 - before[$1, 6]
    wrote[n] += $7 - before[$1, 7]; reads[n] += $8 - before[$1, 8]; writes[n] += $9 - before[$1, 9] }
  END { for (n in user) if (user[n] + sys[n] > 0)
    printf "%-16s CPU %6.1f us/msg (user %6.1f, system %6.1f)  waiting for a core %6.1f us/msg  wrote %7.0f bytes/msg in %5.1f calls  %5.1f read calls/msg\n",
      n, (user[n] + sys[n]) * 1e6 / t / m, user[n] * 1e6 / t / m, sys[n] * 1e6 / t / m,
      wait[n] / 1000 / m, wrote[n] / m, writes[n] / m, reads[n] / m }' "$D/before" "$D/after" | sort
paste "$D/commits.before" "$D/commits.after" | awk '
  { d[$1] = $4 - $2 }
  END { n = d["registrar_store_commit_seconds_count"]; if (n > 0)
    printf "group commits %d, %.2f jobs per commit, %.0f us per commit, writer in transactions %.2f s in all\n",
      n, d["registrar_store_batch_jobs_sum"] / n, d["registrar_store_commit_seconds_sum"] / n * 1e6,
      d["registrar_store_commit_seconds_sum"] }'
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
