-- Search whose cost depends only on the searching user's own entries, for
-- every query form (docs/api.md "Search", docs/architecture.md "Search").
--
-- 1. Each user's words are their own index keys. Every lexeme of a
--    document (and of a query) is prefixed with a tag of its owner
--    (chat_search_tag: 8 hex digits of the user id's MD5 and a colon), so
--    that the GIN index's posting lists hold only that user's entries, and
--    a prefix* scans only that user's words. With 0012's index over
--    (user_id, conversation_id, document) a word's posting list held every
--    user's entries (the user's were found by intersecting it with all of
--    the user's entries), and 'ner':* read the entries of every user's
--    words starting with "ner". Two users sharing a tag (one chance in
--    4 billion a pair) only read each other's index keys; search_page
--    still filters by user_id.
-- 2. Results come in windows of recency. Ranking needs every candidate
--    ranked before the first page is cut, so a word in most of a user's
--    messages cost 2 to 4 µs per match (90 ms for 80,000 matches). Results
--    are now the newest p_window_size matches (1,000 by the service) best
--    first, then the next p_window_size older ones best first, and so on;
--    when a query has no more matches than a window, that is exactly "best
--    first". A window is found either by walking the user's entries newest
--    first through search_entries_recent_idx until it holds enough matches
--    (cheap for common words), or through the GIN index (cheap for rare
--    ones), whichever the planner's statistics say costs less.
--
-- Cost of this migration: every document is rewritten (one UPDATE of
-- search_entries) and both indexes built, in one transaction; writes to
-- messages and conversations wait for it (their triggers write
-- search_entries), reads of them go on. Measured in BENCHMARKS.md
-- "Search".

CREATE FUNCTION chat_search_tag(p_user_id uuid) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN left(md5(p_user_id::text), 8) || ':';

-- The longest lexeme a tag leaves room for (a tsvector's lexeme is at most
-- 2046 bytes). Longer ones are not indexed; the service refuses query
-- words that could normalize to one (services/message/search.h).
CREATE FUNCTION chat_search_max_lexeme() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 2046 - 9;

-- A document with its owner's tag on every lexeme; positions and weights
-- are kept (phrases and ranks work as before). Rewritten through the text
-- form: each lexeme is a single-quoted string there (quotes doubled).
CREATE FUNCTION chat_search_scope(p_user_id uuid, p_document tsvector)
RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN regexp_replace(
  ts_delete(p_document,
            ARRAY(SELECT l.lexeme FROM unnest(p_document) l
                   WHERE octet_length(l.lexeme) > chat_search_max_lexeme()))::text,
  '''((?:[^'']|'''')*)''', '''' || chat_search_tag(p_user_id) || '\1''',
  'g')::tsvector;

-- The same for a query (chat_search_query's result).
CREATE FUNCTION chat_search_scope_query(p_user_id uuid, p_query tsquery)
RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN regexp_replace(p_query::text, '''((?:[^'']|'''')*)''',
                      '''' || chat_search_tag(p_user_id) || '\1''',
                      'g')::tsquery;

-- A user's text as its document.
CREATE FUNCTION chat_search_user_document(p_user_id uuid, p_text text)
RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN chat_search_scope(p_user_id, chat_search_document(p_text));

DROP INDEX search_entries_document_idx;
UPDATE search_entries SET document = chat_search_scope(user_id, document);
-- conversation_id first: a search within one conversation intersects its
-- entries with the words' (btree_gin); a search of all of a user's
-- conversations reads only the words.
CREATE INDEX search_entries_document_idx ON search_entries
  USING gin (conversation_id, document);
-- Statistics of ten times as many words as by default: tagged words are
-- each user's own, so with the default (1,000 words for the whole table) a
-- user's frequent words are mostly missing, and search_page's choice below
-- would rest on guesses (a 3-letter prefix of 5,400 matches estimated at
-- 2,300). ANALYZE then samples 300,000 rows (4 s for 1,000,000 entries).
ALTER TABLE search_entries ALTER COLUMN document SET STATISTICS 1000;
-- The user's entries newest first: the windows of common words.
CREATE INDEX search_entries_recent_idx ON search_entries
  (user_id, created_at DESC, conversation_id DESC, message_id DESC);

CREATE OR REPLACE FUNCTION search_index_new_messages() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  INSERT INTO search_entries (user_id, conversation_id, message_id,
                              created_at, document)
  SELECT n.user_id, n.conversation_id, n.id, n.created_at,
         chat_search_user_document(n.user_id, n.content)
    FROM new_messages n
   WHERE n.status <> 'in_progress'
  ON CONFLICT (user_id, conversation_id, message_id)
  DO UPDATE SET document = EXCLUDED.document;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION search_index_message() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  INSERT INTO search_entries (user_id, conversation_id, message_id,
                              created_at, document)
  VALUES (NEW.user_id, NEW.conversation_id, NEW.id, NEW.created_at,
          chat_search_user_document(NEW.user_id, NEW.content))
  ON CONFLICT (user_id, conversation_id, message_id)
  DO UPDATE SET document = EXCLUDED.document;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION search_index_title() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  INSERT INTO search_entries (user_id, conversation_id, message_id,
                              created_at, document)
  VALUES (NEW.user_id, NEW.id, '00000000-0000-0000-0000-000000000000',
          NEW.created_at,
          setweight(chat_search_user_document(NEW.user_id, NEW.title), 'A'))
  ON CONFLICT (user_id, conversation_id, message_id)
  DO UPDATE SET document = EXCLUDED.document;
  RETURN NULL;
END
$$;

DROP FUNCTION search_page(uuid, tsquery, uuid, real, timestamptz, uuid, uuid,
                          integer);

-- An entry of a window: its key and its rank.
CREATE TYPE search_window_entry AS (
  conversation_id uuid,
  message_id      uuid,
  created_at      timestamptz,
  rank            real
);

-- A window found by walking the user's entries newest first below the
-- start (NULL: the newest) through search_entries_recent_idx, until it
-- holds p_window_size matches of p_query (already scoped). The settings
-- keep the planner on that walk: it would otherwise take the user and the
-- words for independent conditions, expect a tenth of the matches there
-- are, and read every match through the GIN index instead.
CREATE FUNCTION search_recent_window(p_user_id uuid, p_query tsquery,
                                     p_start_created_at timestamptz,
                                     p_start_conversation_id uuid,
                                     p_start_message_id uuid,
                                     p_window_size integer)
RETURNS search_window_entry[]
LANGUAGE sql STABLE
SET enable_bitmapscan = off SET enable_seqscan = off SET enable_sort = off
RETURN (
  SELECT array_agg(ROW(w.conversation_id, w.message_id, w.created_at,
                       ts_rank(w.document, p_query, 1))::search_window_entry)
    FROM (SELECT e.conversation_id, e.message_id, e.created_at, e.document
            FROM search_entries e
           WHERE e.user_id = p_user_id
             AND (e.created_at, e.conversation_id, e.message_id)
                 < (coalesce(p_start_created_at, 'infinity'),
                    coalesce(p_start_conversation_id,
                             'ffffffff-ffff-ffff-ffff-ffffffffffff'),
                    coalesce(p_start_message_id,
                             'ffffffff-ffff-ffff-ffff-ffffffffffff'))
             AND e.document @@ p_query
           ORDER BY e.created_at DESC, e.conversation_id DESC,
                    e.message_id DESC
           LIMIT p_window_size) w);
REVOKE ALL ON FUNCTION search_recent_window(uuid, tsquery, timestamptz, uuid,
                                            uuid, integer) FROM PUBLIC;

-- One page of a user's matches of p_query (chat_search_query's result, not
-- yet scoped): up to p_limit rows after the position p_after_* (rank,
-- created_at, conversation_id, message_id; p_after_rank NULL: from the
-- start) of the window that starts below p_window_* (created_at,
-- conversation_id, message_id; p_window_created_at NULL: the newest). A
-- window is the p_window_size newest matches below its start, in (rank,
-- created_at, conversation_id, message_id) order, all descending; a page
-- that reaches the end of a full window goes on with the next. Each row
-- says which window it is in, for the next page's token. Only in
-- p_conversation_id unless it is NULL. A query with nothing positive
-- (querytree 'T': only negations, which the index cannot answer) matches
-- nothing. p_plan: NULL to let the statistics choose how windows are
-- found, 'recent' or 'index' to choose (tests: both give the same rows).
--
-- Why a SECURITY DEFINER function: under row-level security PostgreSQL
-- evaluates a query's own conditions only after the policy's, unless they
-- are LEAKPROOF, and @@ is not; the GIN index could then not answer @@.
-- As the table's owner (whom the policy does not bind when it is a
-- superuser or has BYPASSRLS) the index answers @@. The function therefore
-- checks the transaction's user itself, like the policy would.
CREATE FUNCTION search_page(p_user_id uuid, p_query tsquery,
                            p_conversation_id uuid, p_window_size integer,
                            p_window_created_at timestamptz,
                            p_window_conversation_id uuid,
                            p_window_message_id uuid, p_after_rank real,
                            p_after_created_at timestamptz,
                            p_after_conversation_id uuid,
                            p_after_message_id uuid, p_limit integer,
                            p_plan text DEFAULT NULL)
RETURNS TABLE (conversation_id uuid, message_id uuid, created_at timestamptz,
               rank real, window_created_at timestamptz,
               window_conversation_id uuid, window_message_id uuid)
-- VOLATILE only because it runs EXPLAIN (not allowed in a STABLE function).
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_query tsquery;
  v_recent boolean;
  v_matches double precision;
  v_entries double precision;
  v_plan json;
  v_window search_window_entry[];
  v_size integer;
  v_left integer := p_limit;
  v_got integer;
  v_after_rank real := p_after_rank;
  v_start_created_at timestamptz := p_window_created_at;
  v_start_conversation_id uuid := p_window_conversation_id;
  v_start_message_id uuid := p_window_message_id;
  v_max_uuid constant uuid := 'ffffffff-ffff-ffff-ffff-ffffffffffff';
BEGIN
  IF p_user_id IS DISTINCT FROM
       NULLIF(current_setting('app.user_id', true), '')::uuid
     OR querytree(p_query)::text = 'T' OR p_window_size < 1
     OR p_limit < 1 THEN
    RETURN;
  END IF;
  v_query := chat_search_scope_query(p_user_id, p_query);

  -- Walking newest first reads about window size / match rate entries;
  -- the GIN index reads every match of the user, at about eight times the
  -- cost per entry (0.6 against 4.7 µs, BENCHMARKS.md "Search"): the walk
  -- wins when matches^2 > 0.13 * window * entries. Both counts are the
  -- planner's estimates (0.3 ms), which the tags make per-user for
  -- frequent words. One conversation: always the index.
  IF p_plan IS NOT NULL THEN
    v_recent := p_plan = 'recent';
  ELSIF p_conversation_id IS NOT NULL THEN
    v_recent := false;
  ELSE
    EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM search_entries '
            'WHERE document @@ $1' USING v_query INTO v_plan;
    v_matches := (v_plan->0->'Plan'->>'Plan Rows')::double precision;
    EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM search_entries '
            'WHERE user_id = $1' USING p_user_id INTO v_plan;
    v_entries := (v_plan->0->'Plan'->>'Plan Rows')::double precision;
    v_recent := v_matches > p_window_size
                AND v_matches * v_matches > 0.13 * p_window_size * v_entries;
  END IF;

  LOOP
    -- The window: the p_window_size newest matches below its start. The
    -- index way is fenced by OFFSET 0 so that its plan stays what it is for,
    -- and ranks every match inside the fence: sorting the matches by time
    -- with their ranks is cheaper than with their documents.
    IF v_recent THEN
      v_window := search_recent_window(p_user_id, v_query, v_start_created_at,
                                       v_start_conversation_id,
                                       v_start_message_id, p_window_size);
    ELSIF p_conversation_id IS NULL THEN
      SELECT array_agg(ROW(w.conversation_id, w.message_id, w.created_at,
                           w.rank)::search_window_entry)
        INTO v_window
        FROM (SELECT e.conversation_id, e.message_id, e.created_at, e.rank
                FROM (SELECT e.user_id, e.conversation_id, e.message_id,
                             e.created_at, ts_rank(e.document, v_query, 1) AS rank
                        FROM search_entries e
                       WHERE e.document @@ v_query
                      OFFSET 0) e
               WHERE e.user_id = p_user_id
                 AND (e.created_at, e.conversation_id, e.message_id)
                     < (coalesce(v_start_created_at, 'infinity'),
                        coalesce(v_start_conversation_id, v_max_uuid),
                        coalesce(v_start_message_id, v_max_uuid))
               ORDER BY e.created_at DESC, e.conversation_id DESC,
                        e.message_id DESC
               LIMIT p_window_size) w;
    ELSE
      SELECT array_agg(ROW(w.conversation_id, w.message_id, w.created_at,
                           w.rank)::search_window_entry)
        INTO v_window
        FROM (SELECT e.conversation_id, e.message_id, e.created_at, e.rank
                FROM (SELECT e.user_id, e.conversation_id, e.message_id,
                             e.created_at, ts_rank(e.document, v_query, 1) AS rank
                        FROM search_entries e
                       WHERE e.conversation_id = p_conversation_id
                         AND e.document @@ v_query
                      OFFSET 0) e
               WHERE e.user_id = p_user_id
                 AND (e.created_at, e.conversation_id, e.message_id)
                     < (coalesce(v_start_created_at, 'infinity'),
                        coalesce(v_start_conversation_id, v_max_uuid),
                        coalesce(v_start_message_id, v_max_uuid))
               ORDER BY e.created_at DESC, e.conversation_id DESC,
                        e.message_id DESC
               LIMIT p_window_size) w;
    END IF;
    v_size := coalesce(cardinality(v_window), 0);

    RETURN QUERY
    SELECT w.conversation_id, w.message_id, w.created_at, w.rank,
           v_start_created_at, v_start_conversation_id, v_start_message_id
      FROM unnest(v_window) w
     WHERE v_after_rank IS NULL
        OR (w.rank, w.created_at, w.conversation_id, w.message_id)
           < (v_after_rank, p_after_created_at, p_after_conversation_id,
              p_after_message_id)
     ORDER BY w.rank DESC, w.created_at DESC, w.conversation_id DESC,
              w.message_id DESC
     LIMIT v_left;
    GET DIAGNOSTICS v_got = ROW_COUNT;
    v_left := v_left - v_got;
    EXIT WHEN v_left = 0 OR v_size < p_window_size;

    -- The next window starts below the oldest entry of this one.
    SELECT w.created_at, w.conversation_id, w.message_id
      INTO v_start_created_at, v_start_conversation_id, v_start_message_id
      FROM unnest(v_window) w
     ORDER BY w.created_at, w.conversation_id, w.message_id
     LIMIT 1;
    v_after_rank := NULL;
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION search_page(uuid, tsquery, uuid, integer, timestamptz,
                                   uuid, uuid, real, timestamptz, uuid, uuid,
                                   integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION search_page(uuid, tsquery, uuid, integer,
                                      timestamptz, uuid, uuid, real,
                                      timestamptz, uuid, uuid, integer, text)
  TO chat_message;
