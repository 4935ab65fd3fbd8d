#!/usr/bin/env bash
# benches/pages.sh: which b-trees the store writer logs per message. Each
# page a commit changes is one frame of the write-ahead log (4 KiB, two
# write calls, a checksum), copied into the database file later by the
# checkpointer; a key that lands on a random page costs a frame per message,
# one that follows time a frame per commit.
#
# The same load as compare.sh: MSGS messages from distinct senders and client
# addresses, SESSIONS sessions, one per connection, replies sent to
# smtp-sink, short enough that the log keeps every frame of it (MSGS up to
# about 550). Then each frame is counted under the b-tree that
# owns its page at the end (SQLite's dbstat). A page freed and reused under
# the load (a delivered reply's body, whose page a new message takes) is
# counted under its last owner. "Distinct" is how many different pages a
# b-tree's frames were: what the checkpointer copies of it. Of those frames,
# "body" held a reply's body (a multipart/alternative mail, queued in
# outbox_bodies) and "zeroed" were all zeros (a page freed with
# secure_delete): what the page went through before its last owner took it.
#
# Usage: benches/pages.sh   Environment: MSGS=500 SESSIONS=10 SIZE=2048
#   WARMUP=300 PREFILLED=path NO_BUILD=1 REGISTRAR=path RG_SMTP=2575
#   RG_HTTP=8099 SINK_PORT=2527
# Needs smtp-sink (postfix) and python3.
set -u
. "$(dirname "$0")/lib.sh"

MSGS=${MSGS:-500}; SESSIONS=${SESSIONS:-10}; SIZE=${SIZE:-2048}; WARMUP=${WARMUP:-300}
begin_loaded_run pages

start_loaded_registrar "$D/rg"
DB="$D/rg/registrar.sqlite3"
send_load "$WARMUP" w 0 > "$D/warmup.out" || die "warm-up failed: $(tail -n 3 "$D/warmup.out")"

# The log starts over with the load's first commit (the warm-up's frames are
# all copied by then), and again only once it grows past 8,192 frames
# (`store::checkpoint`), so a load under that keeps all its frames in the log.
# The log's header counts how often it started over: once, or the load was
# too long.
sleep 2
started=$(od -An -tu4 --endian=big -j12 -N4 "$DB-wal" | tr -d ' ')
send_load "$MSGS" m "$WARMUP" > "$D/load.out" || die "load failed: $(tail -n 3 "$D/load.out")"
sleep 2 # the outbox sends the last replies
cp "$DB-wal" "$D/after.wal"
stop_registrar
now=$(od -An -tu4 --endian=big -j12 -N4 "$D/after.wal" | tr -d ' ')
[ "$now" = $((started + 1)) ] ||
  die "the log started over $((now - started)) times under the load, not once: send fewer messages (MSGS)"

note "$MSGS messages of $SIZE bytes, $SESSIONS sessions, $REGISTRAR${PREFILLED:+, prefilled from $PREFILLED}"
grep -E 'rate=' "$D/load.out"
python3 - "$DB" "$D/after.wal" "$MSGS" <<'PY'
import collections, sqlite3, struct, sys

path, wal_path, messages = sys.argv[1], sys.argv[2], int(sys.argv[3])

def content(page_data):
    """What a frame's page held: a reply's body, zeros, or anything else."""
    if b"multipart/alternative" in page_data:
        return "body"
    if page_data.count(0) == len(page_data):
        return "zeroed"
    return ""

def frames(wal_path):
    """The log's salt and its valid frames: (page number, commit marker,
    what the page held)."""
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
        found.append((page, size, content(data[offset + 24:offset + 24 + page_size])))
        offset += 24 + page_size
    return salt, found

_, load = frames(wal_path)
commits = sum(1 for _, size, _ in load if size)
if not commits:
    sys.exit("no commit under the load")

db = sqlite3.connect(path)
db.execute("CREATE VIRTUAL TABLE temp.pages USING dbstat")
owner = dict(db.execute("SELECT pageno, name FROM temp.pages"))
per_tree = collections.defaultdict(list)
held = collections.defaultdict(collections.Counter)
for page, _, what in load:
    name = owner.get(page, "(free)")
    per_tree[name].append(page)
    held[name][what] += 1
print("log frames %.2f per message, %d commits, %.2f messages per commit"
      % (len(load) / messages, commits, messages / commits))
print("%-40s %10s %10s %12s %8s %8s"
      % ("b-tree", "frames/msg", "per commit", "distinct/msg", "body", "zeroed"))
for name, pages in sorted(per_tree.items(), key=lambda item: -len(item[1])):
    print("%-40s %10.3f %10.2f %12.3f %8.3f %8.3f"
          % (name, len(pages) / messages, len(pages) / commits, len(set(pages)) / messages,
             held[name]["body"] / messages, held[name]["zeroed"] / messages))
body = sum(counts["body"] for counts in held.values())
zeroed = sum(counts["zeroed"] for counts in held.values())
print("frames that held a reply's body %.3f per message, zeroed %.3f" % (body / messages, zeroed / messages))
PY
