# Export and import (issue 12), sourced by bench/run.sh: `make bench` runs it
# last, BENCH_ONLY=transfer runs it alone after the setup.
#
#   1. A user of its own with $BENCH_TRANSFER_CONVS conversations (made
#      through the gateway), seeded by SQL with $BENCH_TRANSFER_MESSAGES
#      messages in all (one branch each, every message the child of the one
#      before, all of it active; ids made from the conversation's id and
#      the depth).
#   2. GET /v1/export of that user through the gateway, streamed to a file:
#      messages per second, the CPU of each process (benchtool run), and
#      the RSS of the gateway and of the message service before, once a
#      tenth of the messages went by, and at the peak (it must not grow
#      with the history).
#   3. POST /v1/import of the export's first whole lines, at most
#      $BENCH_TRANSFER_IMPORT_MB MB (the route takes 256 MiB), into a fresh
#      account: messages per second, and the peak RSS.
#
# Environment: BENCH_TRANSFER_MESSAGES (1000000), BENCH_TRANSFER_CONVS
# (1000: conversations of 1,000 messages, a long real one; importing
# conversations of 10,000 messages hit the message service's statement
# timeout in the first runs), BENCH_TRANSFER_IMPORT_MB (50: the import ran
# at about 1,000 messages/s, bound by the message service's end of each
# conversation, set_active_path, so 200 MB took 8 minutes). Uses run.sh's
# helpers and variables.

TRANSFER_MESSAGES=${BENCH_TRANSFER_MESSAGES:-1000000}
TRANSFER_CONVS=${BENCH_TRANSFER_CONVS:-1000}
TRANSFER_IMPORT_MB=${BENCH_TRANSFER_IMPORT_MB:-50}

transfer_step() {
  local dir=$WORK/transfer per t0
  per=$((TRANSFER_MESSAGES / TRANSFER_CONVS))
  ((per * TRANSFER_CONVS == TRANSFER_MESSAGES)) ||
    die "BENCH_TRANSFER_MESSAGES ($TRANSFER_MESSAGES) is not a multiple of BENCH_TRANSFER_CONVS ($TRANSFER_CONVS)"
  "$BT" transfer-setup -base "$BASE" -convs "$TRANSFER_CONVS" -out "$dir"
  local uid
  uid=$(<"$dir/user_id")
  say "transfer: seeding $TRANSFER_MESSAGES messages into $TRANSFER_CONVS conversations (SQL as the admin)"
  t0=$SECONDS
  psql_admin -v uid="$uid" -v per="$per" >/dev/null <<'SQL'
SET synchronous_commit = off;
CREATE FUNCTION pg_temp.transfer_id(conv uuid, d bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$ SELECT md5(conv::text || ':' || d)::uuid $$;
BEGIN;
INSERT INTO messages (user_id, conversation_id, seq, id, parent_id, active,
                      role, content, status, model, metadata, created_at, updated_at)
SELECT :'uid'::uuid, c.id, d, pg_temp.transfer_id(c.id, d),
       CASE WHEN d = 1 THEN '00000000-0000-0000-0000-000000000000'::uuid
            ELSE pg_temp.transfer_id(c.id, d - 1) END,
       true, CASE WHEN d % 2 = 1 THEN 'user' ELSE 'assistant' END,
       'Seeded message ' || d || ': ' || repeat('lorem ipsum dolor sit amet ', 4),
       'complete', CASE WHEN d % 2 = 1 THEN '' ELSE 'bench-model' END, '{}'::jsonb,
       c.created_at + make_interval(secs => d / 1000.0), c.created_at + make_interval(secs => d / 1000.0)
FROM conversations c CROSS JOIN generate_series(1::bigint, :per) d
WHERE c.user_id = :'uid';
UPDATE conversations c
SET message_count = :per, last_seq = :per,
    last_message_at = c.created_at + make_interval(secs => :per / 1000.0),
    updated_at = GREATEST(c.updated_at, c.created_at + make_interval(secs => :per / 1000.0)),
    active_leaf_id = pg_temp.transfer_id(c.id, :per)
WHERE c.user_id = :'uid';
COMMIT;
VACUUM (ANALYZE) messages;
ANALYZE conversations;
CHECKPOINT;
SQL
  say "transfer: seeded in $((SECONDS - t0)) s; export and import through the gateway"
  local watch="message=${PIDS[message]},gateway=${PIDS[gateway]}"
  measure transfer.cpu_export "$BT" transfer -phase export -base "$BASE" -token-file "$dir/token" \
    -file "$dir/export.ndjson" -expect "$TRANSFER_MESSAGES" -pids "$watch" -results "$RESULTS" >&2
  ((RC == 0)) || die "the export failed"
  measure transfer.cpu_import "$BT" transfer -phase import -base "$BASE" -file "$dir/export.ndjson" \
    -import-bytes $((TRANSFER_IMPORT_MB * 1000000)) -pids "$watch" -results "$RESULTS" >&2
  ((RC == 0)) || die "the import failed"
  rm -f "$dir/export.ndjson"
}
