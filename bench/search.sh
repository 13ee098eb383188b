# The search step of `make bench` (issue 12), sourced by bench/run.sh:
# `BENCH_ONLY=search make bench` runs it alone after the setup; a full run
# runs it after the reads and writes.
#
#   1. Seeding, by SQL as the admin, in a few minutes: a new account (the
#      searcher, registered through the gateway) with
#      $BENCH_SEARCH_HEAVY messages in conversations of 100, and
#      $BENCH_SEARCH_USERS - 1 other users sharing the rest of
#      $BENCH_SEARCH_TOTAL messages. Texts are two sentences of a pool of
#      50,000, whose words are drawn from a vocabulary of 10,000 made-up
#      words with a Zipf-like law (word k about as often as 1/k), so that
#      words of every frequency exist. The triggers of 0012 index every
#      message as it is inserted; the GIN index is dropped for the seeding
#      and built again after it (its definition read from the catalog), as
#      0012 does.
#   2. Per query form (words of chosen frequency ranks, two words, a
#      phrase, a prefix, an exclusion, one conversation, the worst case of
#      the most frequent word): its number of matches for the searcher,
#      then SearchService.Search over gRPC (ghz, the searcher's token,
#      $BENCH_SEARCH_CONCURRENCY calls in flight for
#      $BENCH_SEARCH_DURATION s after a warm-up): p50 and p99.
#   3. The plan of the service's own statement (services/message/
#      search_storage.cc kSearchSql, read by benchtool sql) for one form,
#      as chat_message with the searcher's app.user_id, and of search_page
#      inside it (auto_explain, nested statements, with ANALYZE); the step
#      fails unless the GIN index answers the @@ (an Index Cond).
#   4. A markdown table (also appended to $BENCH_OUT) against SPEC's
#      targets: p50 under 20 ms, p99 under 100 ms.
#
# Environment: BENCH_SEARCH_TOTAL (1000000), BENCH_SEARCH_HEAVY (100000),
# BENCH_SEARCH_USERS (100), BENCH_SEARCH_CONCURRENCY (2),
# BENCH_SEARCH_DURATION (5).

SEARCH_TOTAL=${BENCH_SEARCH_TOTAL:-1000000}
SEARCH_HEAVY=${BENCH_SEARCH_HEAVY:-100000}
SEARCH_USERS=${BENCH_SEARCH_USERS:-100}
SEARCH_CONCURRENCY=${BENCH_SEARCH_CONCURRENCY:-2}
SEARCH_DURATION=${BENCH_SEARCH_DURATION:-5}
SEARCH_TABLE=

# search_seed USER_ID: the searcher's messages and the other users'.
search_seed() {
  local searcher=$1 t0=$SECONDS
  say "search: seeding $SEARCH_TOTAL messages of $SEARCH_USERS users ($SEARCH_HEAVY of the searcher)"
  psql_admin -v searcher="$searcher" -v users="$SEARCH_USERS" -v heavy="$SEARCH_HEAVY" \
    -v total="$SEARCH_TOTAL" >/dev/null <<'SQL'
SET synchronous_commit = off;
SELECT indexdef AS gin_def FROM pg_indexes WHERE indexname = 'search_entries_document_idx' \gset
DROP INDEX search_entries_document_idx;
-- Word k (1-based) of the vocabulary: two or three syllables.
CREATE TABLE bench_search_vocab AS
SELECT k + 1 AS k, s[1 + k % 24] || s[1 + (k / 24) % 24] ||
         CASE WHEN k >= 576 THEN s[1 + (k / 576) % 24] ELSE '' END AS w
  FROM generate_series(0, 9999) k,
       (SELECT ARRAY['ka','lo','mi','ne','ru','to','sa','vi','de','po','ga','zu',
                     're','mo','li','na','be','ti','fo','cu','ha','je','xe','wa'] s) x;
ALTER TABLE bench_search_vocab ADD PRIMARY KEY (k);
CREATE TEMP TABLE sentences AS
SELECT i, (SELECT string_agg(v.w, ' ')
             FROM (SELECT floor(exp(random() * ln(10000.0)))::int AS k
                     FROM generate_series(1, 4 + i % 15) WHERE i >= 0) r
             JOIN bench_search_vocab v USING (k)) AS s
  FROM generate_series(0, 49999) i;
ALTER TABLE sentences ADD PRIMARY KEY (i);
ANALYZE sentences;
-- User 0 is the searcher; the others are made here.
CREATE TEMP TABLE seed_users AS
SELECT u, CASE WHEN u = 0 THEN :'searcher'::uuid
               ELSE ('00000000-0000-7000-8000-' || lpad(to_hex(u), 12, '0'))::uuid END AS id,
       CASE WHEN u = 0 THEN :heavy ELSE (:total - :heavy + :users - 2) / (:users - 1) END AS n
  FROM generate_series(0, :users - 1) u;
INSERT INTO users (id, username, email, password_hash, external, created_at, updated_at)
SELECT id, 'search_bench_' || u, 'search_bench_' || u || '@bench.invalid', '!', true, now(), now()
  FROM seed_users WHERE u > 0;
CREATE TEMP TABLE seed_convs AS
SELECT s.id AS user_id, s.u, c,
       ('00000000-0000-7000-9000-' || lpad(to_hex(s.u * 100000 + c), 12, '0'))::uuid AS id,
       least(100, s.n - c * 100) AS n
  FROM seed_users s, generate_series(0, (s.n - 1) / 100) c;
-- Messages are one branch per conversation, a second apart; conversation
-- c of a user is c days old.
CREATE FUNCTION pg_temp.msg_id(u int, c int, q int) RETURNS uuid LANGUAGE sql IMMUTABLE
AS $$ SELECT ('00000000-' || lpad(to_hex(u), 4, '0') || '-7' || lpad(to_hex(c), 3, '0') ||
              '-a000-' || lpad(to_hex(q), 12, '0'))::uuid $$;
INSERT INTO conversations (user_id, id, title, untitled, message_count, last_seq,
                           last_message_at, active_leaf_id, created_at, updated_at)
SELECT sc.user_id, sc.id,
       'Conversation ' || sc.c || ' about ' || (SELECT w FROM bench_search_vocab WHERE k = 1 + (sc.c * 37) % 10000),
       false, sc.n, sc.n, now() - interval '1 day' * sc.c + interval '1 second' * sc.n,
       pg_temp.msg_id(sc.u, sc.c, sc.n), now() - interval '1 day' * sc.c, now()
  FROM seed_convs sc;
INSERT INTO messages (user_id, conversation_id, seq, id, parent_id, active, role, content,
                      status, model, metadata, created_at, updated_at)
SELECT sc.user_id, sc.id, q, pg_temp.msg_id(sc.u, sc.c, q),
       CASE WHEN q = 1 THEN '00000000-0000-0000-0000-000000000000'::uuid
            ELSE pg_temp.msg_id(sc.u, sc.c, q - 1) END,
       true, CASE WHEN q % 2 = 1 THEN 'user' ELSE 'assistant' END,
       a.s || ' ' || b.s, 'complete', '', '{}'::jsonb,
       now() - interval '1 day' * sc.c + interval '1 second' * q,
       now() - interval '1 day' * sc.c + interval '1 second' * q
  FROM seed_convs sc CROSS JOIN generate_series(1, sc.n) q
  JOIN sentences a ON a.i = (hashint8(sc.u * 100000000::bigint + sc.c * 1000 + q) & 2147483647) % 50000
  JOIN sentences b ON b.i = (hashint8(sc.u * 100000000::bigint + sc.c * 1000 + q + 7919) & 2147483647) % 50000;
:gin_def;
VACUUM (ANALYZE) search_entries;
VACUUM (ANALYZE) messages;
ANALYZE conversations;
CHECKPOINT;
SQL
  say "search: seeded in $((SECONDS - t0)) s"
}

# search_matches USER_ID TSQUERY [CONVERSATION]: how many entries of the
# user (in the conversation) the search finds.
search_matches() {
  psql_admin -t -A -v uid="$1" -v q="$2" -v conv="${3:-}" <<'SQL'
SELECT count(*) FROM search_entries
 WHERE user_id = :'uid'
   AND document @@ chat_search_scope_query(:'uid', chat_search_query(:'q'))
   AND (:'conv' = '' OR conversation_id = NULLIF(:'conv', '')::uuid);
SQL
}

search_step() {
  local reg searcher token conv
  reg=$(curl -sf "$BASE/v1/auth/register" -H 'Content-Type: application/json' \
    -d "{\"username\":\"search_bench\",\"email\":\"search_bench@bench.invalid\",\"password\":\"Passw0rd!search\"}") ||
    die "search: registering the searcher failed"
  searcher=$(jq -r .user.id <<<"$reg")
  token=$(jq -r .tokens.access_token <<<"$reg")
  search_seed "$searcher"

  # Words by frequency rank, as in the vocabulary's law.
  local w1 w2 w10 w11 w100 w1000
  read -r w1 w2 w10 w11 w100 w1000 < <(psql_admin -t -A -F ' ' -c \
    "SELECT string_agg(w, ' ' ORDER BY array_position(ARRAY[1,2,10,11,100,1000], k))
       FROM bench_search_vocab WHERE k IN (1, 2, 10, 11, 100, 1000)")
  # A phrase that the searcher's texts hold: the first two words of a text.
  local phrase
  phrase=$(psql_admin -t -A -c "SELECT split_part(content, ' ', 1) || ' ' || split_part(content, ' ', 2)
      FROM messages WHERE user_id = '$searcher' AND content LIKE '% % %' ORDER BY seq, id LIMIT 1")
  conv=$(psql_admin -t -A -c "SELECT id FROM conversations WHERE user_id = '$searcher' ORDER BY created_at DESC LIMIT 1")
  psql_admin -c "DROP TABLE bench_search_vocab" >/dev/null

  local -a labels=() queries=() extras=()
  labels+=("word, rank 1000") queries+=("$w1000") extras+=("")
  labels+=("word, rank 100") queries+=("$w100") extras+=("")
  labels+=("word, rank 10") queries+=("$w10") extras+=("")
  labels+=("two words, ranks 10 and 100") queries+=("$w10 $w100") extras+=("")
  labels+=("phrase") queries+=("\"$phrase\"") extras+=("")
  labels+=("prefix (3 letters)") queries+=("${w100:0:3}*") extras+=("")
  labels+=("word -exclusion, ranks 10, 11") queries+=("$w10 -$w11") extras+=("")
  labels+=("word in one conversation, rank 10") queries+=("$w10") extras+=("$conv")
  labels+=("word, rank 2 (worst case)") queries+=("$w2") extras+=("")
  labels+=("word, rank 1 (worst case)") queries+=("$w1") extras+=("")

  local saved_token=$TOKEN i data matches
  TOKEN=$token
  local table="| query form | q | matches | p50 ms | p99 ms | calls | errors | target |"$'\n'"|---|---|---:|---:|---:|---:|---:|---|"
  for i in "${!labels[@]}"; do
    data=$(jq -cn --arg q "${queries[$i]}" --arg c "${extras[$i]}" \
      '{q: $q, page_size: 20} + (if $c == "" then {} else {conversation_id: $c} end)')
    matches=$(search_matches "$searcher" "$(search_tsquery "${queries[$i]}")" "${extras[$i]}")
    LOAD_WARMUP=1 LOAD_DURATION=$SEARCH_DURATION ghz_load "search.$i" "search: ${labels[$i]}" \
      SearchService.Search "$SEARCH_CONCURRENCY" --data "$data"
    local p50 p99 ok errors verdict
    p50=$(sed -n "s/^search\.$i\.p50_ms=//p" "$RESULTS" | tail -n 1)
    p99=$(sed -n "s/^search\.$i\.p99_ms=//p" "$RESULTS" | tail -n 1)
    ok=$(sed -n "s/^search\.$i\.ok=//p" "$RESULTS" | tail -n 1)
    errors=$(sed -n "s/^search\.$i\.errors=//p" "$RESULTS" | tail -n 1)
    if awk -v a="$p50" -v b="$p99" 'BEGIN { exit !(a < 20 && b < 100) }'; then verdict=PASS; else verdict=MISS; fi
    table+=$'\n'"| ${labels[$i]} | \`${queries[$i]}\` | $matches | $p50 | $p99 | $ok | $errors | $verdict |"
  done
  TOKEN=$saved_token

  # The plans of the service's own statement and, through auto_explain, of
  # search_page inside it (nested statements), as chat_message: a word of
  # rank 100 must be found through the GIN index, one of rank 1 by walking
  # the user's entries newest first. 1000: search.h kSearchWindowSize.
  local sql plan plans="" word want
  sql=$("$BT" sql -src "$ROOT/services/message/search_storage.cc" -name kSearchSql) ||
    die "search: cannot read kSearchSql"
  for word in "$w100" "$w1"; do
    if [[ $word == "$w100" ]]; then want="Index Cond: .*document @@"; else want="search_entries_recent_idx"; fi
    plan=$(psql_admin -v uid="$searcher" -v q="$(search_tsquery "$word")" 2>&1 <<SQL
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_nested_statements = on;
SET ROLE chat_message;
SELECT set_config('app.user_id', :'uid', false) \gset
PREPARE search_find AS $sql;
SET client_min_messages = log;
EXECUTE search_find(:'uid', :'q', NULL, 1000, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, 21, 'StartSel=zzs, StopSel=zze, HighlightAll=true') \g /dev/null
SQL
    ) || die "search: EXPLAIN failed: $plan"
    plan=$(sed -e 's/^psql:<stdin>:[0-9]*: //' <<<"$plan")
    grep -q "$want" <<<"$plan" ||
      die "search: the plan of '$word' does not use $want: $plan"
    plans+="The plan of \`$word\` (services/message/search_storage.cc kSearchSql, as chat_message):

\`\`\`
$plan
\`\`\`

"
  done
  printf '%s\n' "$plans" >"$WORK/out/search.plan"

  SEARCH_TABLE="### Search (issue 12): SearchService.Search over gRPC, $SEARCH_CONCURRENCY in flight

A user with $SEARCH_HEAVY messages among $SEARCH_TOTAL of $SEARCH_USERS users; page_size 20; SPEC: p50 < 20 ms, p99 < 100 ms.

$table

$plans"
}

# search_tsquery Q: the tsquery text the service makes of a simple q
# (words, one "phrase", -word, prefix*), for counting matches.
search_tsquery() {
  local q=$1 out=() term
  if [[ $q == \"*\" ]]; then
    q=${q#\"}
    q=${q%\"}
    local words=() w
    for w in $q; do words+=("'$w'"); done
    local IFS=' '
    printf '(%s)\n' "$(sed 's/ / <-> /g' <<<"${words[*]}")"
    return
  fi
  for term in $q; do
    case $term in
      -*) out+=("!'${term#-}'") ;;
      *\*) out+=("'${term%\*}':*") ;;
      *) out+=("'$term'") ;;
    esac
  done
  local IFS='&'
  sed 's/&/ \& /g' <<<"${out[*]}"
}
