-- Full-text search (docs/api.md "Search"), in PostgreSQL itself.
--
-- search_entries holds one row per message and one per conversation title
-- (message_id = the nil UUID): the words of its text as a tsvector, kept
-- current by triggers in the same transaction as the write (no background
-- sync: a search sees exactly what is committed). A GIN index over
-- (user_id, conversation_id, document) (btree_gin for the uuids) answers
-- "this user's (or this conversation's) entries with these words";
-- row-level security binds every read to the transaction's user like the
-- other tables.
--
-- Words: the parser of the 'simple' configuration (no language, no
-- stemming, no stop words: any script), lower-cased and stripped of accents
-- by the unaccent dictionary, named explicitly in configuration
-- chat_search. Scripts written without spaces (Han, Hiragana, Katakana,
-- Hangul) are indexed one character per word (chat_search_text puts
-- U+FDD0, a noncharacter the parser treats as a separator, around each),
-- and a query word of them becomes the phrase of its characters: a
-- substring search. Replies in progress are indexed when they end (their
-- text is stored twice a second while they stream).
--
-- Cost of this migration on an existing database: it computes the document
-- of every message and title and builds the index, in one transaction
-- (measured: 62 s for 1,000,000 short messages on two shared cores; the
-- table then takes about 1.25 times the space of messages, its index 0.65
-- times; BENCHMARKS.md "Search"). messages and conversations stay readable
-- throughout, but CREATE TRIGGER holds a SHARE ROW EXCLUSIVE lock on both
-- until the commit, so writes to them wait for the whole migration.
-- messages itself is not rewritten (no new column). On a large
-- installation, run it in a maintenance window (docs/architecture.md
-- "Search"). Afterwards each message written costs its trigger about
-- 0.1 ms.

CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE TEXT SEARCH CONFIGURATION chat_search (COPY = pg_catalog.simple);
ALTER TEXT SEARCH CONFIGURATION chat_search
  ALTER MAPPING FOR word, hword, hword_part, numword, numhword
  WITH unaccent, simple;

-- The text as the parser should see it: each character of the scripts
-- written without spaces set apart by U+FDD0 on both sides. Applied to
-- documents, to headlines (the C++ side removes the U+FDD0 again) and to
-- the text of a query.
CREATE FUNCTION chat_search_text(p_text text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN regexp_replace(p_text,
  '([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002fa1f])',
  U&'\FDD0\\1\FDD0', 'g');

-- Immutable: the configuration and its unaccent dictionary are fixed by
-- name, not by search_path or a setting.
CREATE FUNCTION chat_search_document(p_text text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN to_tsvector('public.chat_search'::regconfig, chat_search_text(p_text));

-- The same for a query: `p_query` is a tsquery of single-quoted lexemes
-- that the message service builds from q (services/message/search.h).
CREATE FUNCTION chat_search_query(p_query text) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN to_tsquery('public.chat_search'::regconfig, chat_search_text(p_query));

CREATE TABLE search_entries (
  user_id         uuid NOT NULL,
  conversation_id uuid NOT NULL,
  -- The message; the nil UUID for the conversation's title.
  message_id      uuid NOT NULL,
  -- The message's creation time, or the conversation's.
  created_at      timestamptz NOT NULL,
  document        tsvector NOT NULL,
  PRIMARY KEY (user_id, conversation_id, message_id),
  FOREIGN KEY (user_id, conversation_id)
    REFERENCES conversations (user_id, id) ON DELETE CASCADE
);

ALTER TABLE search_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE search_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY search_entries_owner ON search_entries
  USING (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid))
  WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid));

-- The triggers below write it as their owner (SECURITY DEFINER), whatever
-- role made the change; the message service reads it only through
-- search_page.

-- One page of a user's matches of p_query, best first: (rank, created_at,
-- conversation_id, message_id), all descending, after the position p_after_*
-- (p_after_rank NULL: from the start); only in p_conversation_id unless it
-- is NULL. A query with nothing positive (querytree 'T': only negations,
-- which the index cannot answer without reading every entry) matches
-- nothing.
--
-- Why a SECURITY DEFINER function: under row-level security PostgreSQL
-- evaluates a query's own conditions only after the policy's, unless they
-- are LEAKPROOF, and @@ is not; the GIN index could then serve only the
-- user_id, and every entry of the user would be read and matched. As the
-- table's owner (whom the policy does not bind when it is a superuser or
-- has BYPASSRLS) the index answers @@ too. The function therefore checks
-- the transaction's user itself, like the policy would.
CREATE FUNCTION search_page(p_user_id uuid, p_query tsquery,
                            p_conversation_id uuid, p_after_rank real,
                            p_after_created_at timestamptz,
                            p_after_conversation_id uuid,
                            p_after_message_id uuid, p_limit integer)
RETURNS TABLE (conversation_id uuid, message_id uuid, created_at timestamptz,
               rank real)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  IF p_user_id IS DISTINCT FROM
       NULLIF(current_setting('app.user_id', true), '')::uuid
     OR querytree(p_query)::text = 'T' THEN
    RETURN;
  END IF;
  -- Two statements, so that each has its index conditions: all of the
  -- user's entries, or one conversation's.
  IF p_conversation_id IS NULL THEN
    RETURN QUERY
    SELECT h.conversation_id, h.message_id, h.created_at, h.rank
      FROM (SELECT e.conversation_id, e.message_id, e.created_at,
                   ts_rank(e.document, p_query, 1) AS rank
              FROM search_entries e
             WHERE e.user_id = p_user_id AND e.document @@ p_query) h
     WHERE p_after_rank IS NULL
        OR (h.rank, h.created_at, h.conversation_id, h.message_id)
           < (p_after_rank, p_after_created_at, p_after_conversation_id,
              p_after_message_id)
     ORDER BY h.rank DESC, h.created_at DESC, h.conversation_id DESC,
              h.message_id DESC
     LIMIT p_limit;
  ELSE
    RETURN QUERY
    SELECT h.conversation_id, h.message_id, h.created_at, h.rank
      FROM (SELECT e.conversation_id, e.message_id, e.created_at,
                   ts_rank(e.document, p_query, 1) AS rank
              FROM search_entries e
             WHERE e.user_id = p_user_id
               AND e.conversation_id = p_conversation_id
               AND e.document @@ p_query) h
     WHERE p_after_rank IS NULL
        OR (h.rank, h.created_at, h.conversation_id, h.message_id)
           < (p_after_rank, p_after_created_at, p_after_conversation_id,
              p_after_message_id)
     ORDER BY h.rank DESC, h.created_at DESC, h.conversation_id DESC,
              h.message_id DESC
     LIMIT p_limit;
  END IF;
END
$$;
REVOKE ALL ON FUNCTION search_page(uuid, tsquery, uuid, real, timestamptz,
                                   uuid, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION search_page(uuid, tsquery, uuid, real, timestamptz,
                                      uuid, uuid, integer) TO chat_message;

-- New messages (one by one, or many at once: a fork), as a statement.
CREATE FUNCTION search_index_new_messages() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  INSERT INTO search_entries (user_id, conversation_id, message_id,
                              created_at, document)
  SELECT n.user_id, n.conversation_id, n.id, n.created_at,
         chat_search_document(n.content)
    FROM new_messages n
   WHERE n.status <> 'in_progress'
  ON CONFLICT (user_id, conversation_id, message_id)
  DO UPDATE SET document = EXCLUDED.document;
  RETURN NULL;
END
$$;

-- An edited message, or a reply that ended.
CREATE FUNCTION search_index_message() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  INSERT INTO search_entries (user_id, conversation_id, message_id,
                              created_at, document)
  VALUES (NEW.user_id, NEW.conversation_id, NEW.id, NEW.created_at,
          chat_search_document(NEW.content))
  ON CONFLICT (user_id, conversation_id, message_id)
  DO UPDATE SET document = EXCLUDED.document;
  RETURN NULL;
END
$$;

-- Deleted messages (a subtree, a cleared conversation), as a statement.
CREATE FUNCTION search_unindex_messages() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  DELETE FROM search_entries e USING old_messages o
   WHERE e.user_id = o.user_id AND e.conversation_id = o.conversation_id
     AND e.message_id = o.id;
  RETURN NULL;
END
$$;

-- A new conversation's title, or a changed one. The entry of a deleted
-- conversation goes by the foreign key.
CREATE FUNCTION search_index_title() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  INSERT INTO search_entries (user_id, conversation_id, message_id,
                              created_at, document)
  VALUES (NEW.user_id, NEW.id, '00000000-0000-0000-0000-000000000000',
          NEW.created_at, setweight(chat_search_document(NEW.title), 'A'))
  ON CONFLICT (user_id, conversation_id, message_id)
  DO UPDATE SET document = EXCLUDED.document;
  RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION search_index_new_messages(), search_index_message(),
  search_unindex_messages(), search_index_title() FROM PUBLIC;

CREATE TRIGGER messages_search_insert AFTER INSERT ON messages
  REFERENCING NEW TABLE AS new_messages
  FOR EACH STATEMENT EXECUTE FUNCTION search_index_new_messages();
-- Only writes of content or status fire it, and only when a finished
-- message's text changed: switching branches, storing a reply in progress
-- and the like cost nothing here.
CREATE TRIGGER messages_search_update AFTER UPDATE OF content, status
  ON messages FOR EACH ROW
  WHEN (NEW.status <> 'in_progress'
        AND (OLD.status = 'in_progress' OR OLD.content IS DISTINCT FROM NEW.content))
  EXECUTE FUNCTION search_index_message();
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages
  REFERENCING OLD TABLE AS old_messages
  FOR EACH STATEMENT EXECUTE FUNCTION search_unindex_messages();
CREATE TRIGGER conversations_search_insert AFTER INSERT ON conversations
  FOR EACH ROW EXECUTE FUNCTION search_index_title();
CREATE TRIGGER conversations_search_update AFTER UPDATE OF title
  ON conversations FOR EACH ROW
  WHEN (OLD.title IS DISTINCT FROM NEW.title)
  EXECUTE FUNCTION search_index_title();

-- What exists already; the index is built after, which is faster than
-- inserting into it row by row.
INSERT INTO search_entries (user_id, conversation_id, message_id, created_at,
                            document)
SELECT user_id, id, '00000000-0000-0000-0000-000000000000', created_at,
       setweight(chat_search_document(title), 'A')
  FROM conversations;
INSERT INTO search_entries (user_id, conversation_id, message_id, created_at,
                            document)
SELECT user_id, conversation_id, id, created_at, chat_search_document(content)
  FROM messages WHERE status <> 'in_progress';

-- conversation_id is in it for searches within one conversation: GIN
-- intersects its short posting list instead of reading every match of the
-- user.
CREATE INDEX search_entries_document_idx
  ON search_entries USING gin (user_id, conversation_id, document);
