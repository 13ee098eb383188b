-- Share links (docs/api.md "Share links"): a read-only snapshot of a
-- conversation's active branch, copied when the share is made, reachable
-- by anyone who holds its token. Only the SHA-256 of the token is kept.
--
-- The owner's calls go through the tables with app.user_id set, like every
-- other table (forced row-level security). The read by token has no user:
-- the message service calls shared_conversation(hash), a SECURITY DEFINER
-- function owned by chat_share_reader, a role that cannot log in, may only
-- SELECT the columns a shared view needs, and whose policies let it see
-- only the share whose token hash the function names for the duration of
-- the call. The message service's own role sees nothing of these tables
-- without app.user_id, whatever settings it makes.
--
-- Deleting the conversation (or the account, which deletes its
-- conversations) deletes its shares and their snapshots: the foreign keys
-- cascade, so a revoked conversation's token finds nothing.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chat_share_reader') THEN
    CREATE ROLE chat_share_reader NOLOGIN;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO chat_share_reader;

CREATE TABLE shares (
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  id              uuid NOT NULL,
  conversation_id uuid NOT NULL,
  -- SHA-256 of the token (32 bytes).
  token_hash      bytea NOT NULL CHECK (octet_length(token_hash) = 32),
  -- The conversation's title when the share was made.
  title           text NOT NULL,
  message_count   integer NOT NULL,
  created_at      timestamptz NOT NULL,
  PRIMARY KEY (user_id, id),
  FOREIGN KEY (user_id, conversation_id)
    REFERENCES conversations (user_id, id) ON DELETE CASCADE
);
-- Listing a conversation's shares, newest first.
CREATE INDEX shares_conversation_idx
  ON shares (user_id, conversation_id, created_at DESC, id DESC);
-- The one index that does not lead with user_id: a shared view knows only
-- its token. It is reached only through shared_conversation().
CREATE UNIQUE INDEX shares_token_hash_key ON shares (token_hash);

-- The snapshot: copies of the messages, root first by position.
CREATE TABLE share_messages (
  user_id    uuid NOT NULL,
  share_id   uuid NOT NULL,
  position   integer NOT NULL,
  role       text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
  content    text NOT NULL,
  model      text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, share_id, position),
  FOREIGN KEY (user_id, share_id)
    REFERENCES shares (user_id, id) ON DELETE CASCADE
);

ALTER TABLE shares ENABLE ROW LEVEL SECURITY;
ALTER TABLE shares FORCE ROW LEVEL SECURITY;
CREATE POLICY shares_owner ON shares
  USING (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid))
  WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid));
-- The reader sees the one share whose token hash shared_conversation set.
CREATE POLICY shares_shared ON shares FOR SELECT TO chat_share_reader
  USING (token_hash = (SELECT decode(NULLIF(current_setting('app.shared_token_hash', true), ''), 'hex')));

ALTER TABLE share_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE share_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY share_messages_owner ON share_messages
  USING (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid))
  WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid));
-- ... and the messages of that share alone.
CREATE POLICY share_messages_shared ON share_messages FOR SELECT
  TO chat_share_reader
  USING (share_id = (SELECT NULLIF(current_setting('app.shared_share_id', true), '')::uuid));

GRANT SELECT, INSERT, DELETE ON shares, share_messages TO chat_message;
GRANT SELECT (user_id, id, token_hash, title, created_at) ON shares
  TO chat_share_reader;
GRANT SELECT (user_id, share_id, position, role, content, model, created_at)
  ON share_messages TO chat_share_reader;

-- The snapshot of the share whose token hashes to p_token_hash: one row per
-- message, root first, each with the share's title and time; a share
-- without messages is one row whose message columns are NULL; no rows when
-- there is no such share. Nothing of the owner is returned. The settings
-- that open the reader's policies are cleared again before it returns.
CREATE FUNCTION shared_conversation(p_token_hash bytea)
RETURNS TABLE (title text, shared_at timestamptz, role text, content text,
               model text, created_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
  v_user_id uuid;
  v_share_id uuid;
  v_title text;
  v_shared_at timestamptz;
BEGIN
  PERFORM set_config('app.shared_token_hash', encode(p_token_hash, 'hex'), true);
  SELECT s.user_id, s.id, s.title, s.created_at
    INTO v_user_id, v_share_id, v_title, v_shared_at
    FROM shares s WHERE s.token_hash = p_token_hash;
  IF FOUND THEN
    PERFORM set_config('app.shared_share_id', v_share_id::text, true);
    RETURN QUERY
      SELECT v_title, v_shared_at, m.role, m.content, m.model, m.created_at
        FROM (SELECT 1) AS header
        LEFT JOIN share_messages m
          ON m.user_id = v_user_id AND m.share_id = v_share_id
       ORDER BY m.position;
  END IF;
  PERFORM set_config('app.shared_token_hash', '', true);
  PERFORM set_config('app.shared_share_id', '', true);
END
$$;

REVOKE ALL ON FUNCTION shared_conversation(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shared_conversation(bytea) TO chat_message;

-- The function runs as chat_share_reader, not as the tables' owner.
-- Changing a function's owner needs CREATE on its schema for the new owner
-- (and membership in it for a migrating role that is not a superuser),
-- granted for that moment only.
GRANT chat_share_reader TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO chat_share_reader;
ALTER FUNCTION shared_conversation(bytea) OWNER TO chat_share_reader;
REVOKE CREATE ON SCHEMA public FROM chat_share_reader;
