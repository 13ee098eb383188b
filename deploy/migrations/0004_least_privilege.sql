-- Least privilege and guard rails (docs/architecture.md "Roles: least privilege"):
-- * no service but auth can insert users: the profile rows of the external
--   identity provider's users are made by one function, which refuses an id
--   that belongs to a local account;
-- * the conversation and message services may read only the id of users,
--   to tell a deleted account from an empty one;
-- * the message service may update only the conversation columns it
--   maintains (counts, positions, activity); the automatic title it sets
--   through one function, and only on a conversation still untitled;
-- * every service role has a statement timeout and an idle-in-transaction
--   timeout, so no bug can hold a connection or a lock forever (the services
--   set their own, configurable, values on each connection as well).

-- Rows made for the external issuer's users; they have no password here.
ALTER TABLE users ADD COLUMN external boolean NOT NULL DEFAULT false;
UPDATE users SET external = true WHERE password_hash = '!';

REVOKE INSERT ON users FROM chat_conversation, chat_message;
GRANT SELECT (id) ON users TO chat_conversation, chat_message;

-- Creates the profile row of an external user unless it exists. True when
-- the id is (now) an external user's, false when it is a local account's:
-- such a token must not act as that account. The email is stored only when
-- it is free; else (or when empty) the placeholder is.
CREATE FUNCTION ensure_external_user(p_id uuid, p_username text,
                                     p_email text, p_placeholder_email text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  IF p_email <> '' THEN
    INSERT INTO users (id, username, email, password_hash, external,
                       created_at, updated_at)
    VALUES (p_id, p_username, p_email, '!', true, now(), now())
    ON CONFLICT DO NOTHING;
  END IF;
  INSERT INTO users (id, username, email, password_hash, external,
                     created_at, updated_at)
  VALUES (p_id, p_username, p_placeholder_email, '!', true, now(), now())
  ON CONFLICT DO NOTHING;
  RETURN EXISTS (SELECT 1 FROM users WHERE id = p_id AND external);
END
$$;
REVOKE ALL ON FUNCTION ensure_external_user(uuid, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ensure_external_user(uuid, text, text, text)
  TO chat_conversation, chat_message;

REVOKE UPDATE ON conversations FROM chat_message;
GRANT UPDATE (message_count, last_seq, last_message_at, updated_at)
  ON conversations TO chat_message;

-- The title the first reply gives an untitled conversation; a title of the
-- user's own is never touched. The function runs as its owner, whom
-- row-level security may not bind (a superuser), so it checks the
-- transaction's user itself.
CREATE FUNCTION name_untitled_conversation(p_user_id uuid, p_id uuid,
                                           p_title text, p_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  UPDATE conversations
     SET title = p_title, untitled = false,
         updated_at = GREATEST(updated_at, p_at)
   WHERE user_id = p_user_id AND id = p_id AND untitled
     AND p_user_id = NULLIF(current_setting('app.user_id', true), '')::uuid;
  RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION name_untitled_conversation(uuid, uuid, text, timestamptz)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  name_untitled_conversation(uuid, uuid, text, timestamptz) TO chat_message;

ALTER ROLE chat_auth SET statement_timeout = '30s';
ALTER ROLE chat_conversation SET statement_timeout = '30s';
ALTER ROLE chat_message SET statement_timeout = '30s';
ALTER ROLE chat_auth SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE chat_conversation SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE chat_message SET idle_in_transaction_session_timeout = '60s';

-- A refresh token replayed within the grace window (two tabs) gets a twin:
-- a token of the same family but of a session of its own, so that a
-- password change made in one session ends the twin as well. NULL is the
-- session that the login started, whose id is the family's.
ALTER TABLE refresh_tokens ADD COLUMN session_id uuid;
