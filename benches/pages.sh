#!/usr/bin/env bash
# benches/pages.sh: which b-trees the store writer logs per message. Each
# page a commit changes is one frame of the write-ahead log (4 KiB, two
# write calls, a checksum), copied into the database file later by the
# checkpointer; a key that lands on a random page costs a frame per message,
# one that follows time a frame per commit.
#
# The same load as compare.sh: MSGS messages from distinct senders and client
# addresses, SESSIONS sessions, one per connection, replies sent to
# smtp-sink. A reader holds a read transaction open from after the warm-up,
# so that no checkpoint can start the log over: every frame written under
# the load stays in it. Then each frame is counted under the b-tree that
# owns its page at the end (SQLite's dbstat). A page freed and reused under
# the load (a delivered reply's body, whose page a new message takes) is
# counted under its last owner. "Distinct" is how many different pages a
# b-tree's frames were: what the checkpointer copies of it.
#
# Usage: benches/pages.sh   Environment: MSGS=3000 SESSIONS=10 SIZE=2048
#   WARMUP=300 PREFILLED=path NO_BUILD=1 REGISTRAR=path RG_SMTP=2575
#   RG_HTTP=8099 SINK_PORT=2527
# Needs smtp-sink (postfix) and python3.
set -u
. "$(dirname "$0")/lib.sh"

MSGS=${MSGS:-3000}; SESSIONS=${SESSIONS:-10}; SIZE=${SIZE:-2048}; WARMUP=${WARMUP:-300}
RG_SMTP=${RG_SMTP:-2575}; RG_HTTP=${RG_HTTP:-8099}; SINK_PORT=${SINK_PORT:-2527}
ensure_postfix
need_free_ports "$RG_SMTP" "$RG_HTTP" "$SINK_PORT"
build

D=$(mktemp -d -t registrar-pages.XXXXXX); chmod 755 "$D"
HOLD_PID=""
cleanup() {
  set +e
  [ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
  stop_registrar
  stop_sink
  rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_sink
write_config "$D/rg" "$RG_SMTP" "$RG_HTTP" "smtp://127.0.0.1:$SINK_PORT" lifted
if [ -n "${PREFILLED:-}" ]; then
  cp "$PREFILLED" "$D/rg/registrar.sqlite3" || die "cannot copy $PREFILLED"
fi
start_registrar "$D/rg" "$RG_SMTP"
DB="$D/rg/registrar.sqlite3"

send() { # COUNT TAG OFFSET
  "$LOADGEN" send --target "127.0.0.1:$RG_SMTP" --messages "$1" --sessions "$SESSIONS" \
    --per-connection 1 --size "$SIZE" --rcpt support@bench.test --tag "$2$$" --source-offset "$3"
}
send "$WARMUP" w 0 > "$D/warmup.out" || die "warm-up failed: $(tail -n 3 "$D/warmup.out")"

# The reader: takes its snapshot, says so, and holds it until killed.
python3 - "$DB" > "$D/hold.out" <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN")
db.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()
print("held", flush=True)
time.sleep(86400)
PY
HOLD_PID=$!
for _ in $(seq 1 100); do grep -q held "$D/hold.out" && break; sleep 0.1; done
grep -q held "$D/hold.out" || die "the reader did not start"
cp "$DB-wal" "$D/before.wal"

send "$MSGS" m "$WARMUP" > "$D/load.out" || die "load failed: $(tail -n 3 "$D/load.out")"
sleep 2 # the outbox sends the last replies
cp "$DB-wal" "$D/after.wal"
kill "$HOLD_PID"; wait "$HOLD_PID" 2>/dev/null; HOLD_PID=""
stop_registrar

note "$MSGS messages of $SIZE bytes, $SESSIONS sessions, $REGISTRAR${PREFILLED:+, prefilled from $PREFILLED}"
grep -E 'rate=' "$D/load.out"
python3 - "$DB" "$D/before.wal" "$D/after.wal" "$MSGS" <<'PY'
import collections, sqlite3, struct, sys

path, before_path, after_path, messages = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def frames(wal_path):
    """The log's salt and its valid frames: (page number, commit marker)."""
    data = open(wal_path, "rb").read()
    if len(data) < 32:
        return None, []
    page_size = struct.unpack(">I", data[8:12])[0]
    salt = data[16:24]
    found, offset = [], 32
    while offset + 24 + page_size <= len(data):
        page, size = struct.unpack(">II", data[offset:offset + 8])
        if data[offset + 8:offset + 16] != salt:
            break
        found.append((page, size))
        offset += 24 + page_size
    return salt, found

salt_before, before = frames(before_path)
salt_after, after = frames(after_path)
if salt_before == salt_after:
    load = after[len(before):]
else:
    sys.exit("the log was started over under the load (the reader held no frame of it); run again")
commits = sum(1 for _, size in load if size)
if not commits:
    sys.exit("no commit under the load")

db = sqlite3.connect(path)
db.execute("CREATE VIRTUAL TABLE temp.pages USING dbstat")
owner = dict(db.execute("SELECT pageno, name FROM temp.pages"))
per_tree = collections.defaultdict(list)
for page, _ in load:
    per_tree[owner.get(page, "(free)")].append(page)
print("log frames %.2f per message, %d commits, %.2f messages per commit"
      % (len(load) / messages, commits, messages / commits))
print("%-40s %10s %10s %12s" % ("b-tree", "frames/msg", "per commit", "distinct/msg"))
for name, pages in sorted(per_tree.items(), key=lambda item: -len(item[1])):
    print("%-40s %10.3f %10.2f %12.3f"
          % (name, len(pages) / messages, len(pages) / commits, len(set(pages)) / messages))
PY
