-- Full-text search (docs/api.md "Search"), in PostgreSQL itself.
--
-- search_entries holds one row per message and one per conversation title
-- (message_id = the nil UUID): the words of its text as a tsvector, kept
-- current by triggers in the same transaction as the write (no background
-- sync: a search sees exactly what is committed). A GIN index over
-- (user_id, document) (btree_gin for the uuid) answers "this user's entries
-- with these words"; row-level security binds every read to the
-- transaction's user like the other tables.
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
-- of every message and title (about 5 s per million short messages on two
-- cores, plus the index build) in one transaction. messages and
-- conversations are readable throughout, but CREATE TRIGGER holds a SHARE
-- ROW EXCLUSIVE lock on both until the commit, so writes to them wait for
-- the whole migration. messages itself is not rewritten (no new column).
-- On a large installation, run it in a maintenance window (see
-- docs/architecture.md "Search").

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

-- The message service only reads it; the triggers below write it as their
-- owner (SECURITY DEFINER), whatever role made the change.
GRANT SELECT ON search_entries TO chat_message;

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

CREATE INDEX search_entries_document_idx
  ON search_entries USING gin (user_id, document);
