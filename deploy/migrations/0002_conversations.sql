-- Conversations, messages and idempotency keys, isolated per user twice over:
-- every query of the services filters by user_id, and row-level security
-- (forced, so it binds the table owner too) hides every row whose user_id is
-- not the transaction's app.user_id setting. A session that never set it
-- sees nothing. Every table leads with user_id, so the schema can be
-- distributed by it (Citus) later.

CREATE TABLE conversations (
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  id              uuid NOT NULL,
  title           text NOT NULL,
  -- True while the title is the default one: the first assistant reply may
  -- then name the conversation.
  untitled        boolean NOT NULL,
  metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
  archived        boolean NOT NULL DEFAULT false,
  pinned          boolean NOT NULL DEFAULT false,
  message_count   bigint NOT NULL DEFAULT 0,
  -- The position of the newest message ever appended; positions order the
  -- messages and are handed out under this row's lock, so they follow
  -- commit order.
  last_seq        bigint NOT NULL DEFAULT 0,
  last_message_at timestamptz,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL,
  PRIMARY KEY (user_id, id)
);
CREATE INDEX conversations_listing_idx
  ON conversations (user_id, archived, pinned DESC, updated_at DESC, id DESC);

CREATE TABLE messages (
  user_id         uuid NOT NULL,
  conversation_id uuid NOT NULL,
  seq             bigint NOT NULL,
  id              uuid NOT NULL,
  role            text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
  content         text NOT NULL,
  status          text NOT NULL
                  CHECK (status IN ('complete', 'in_progress', 'incomplete', 'failed')),
  model           text NOT NULL DEFAULT '',
  metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL,
  PRIMARY KEY (user_id, conversation_id, seq),
  UNIQUE (user_id, conversation_id, id),
  FOREIGN KEY (user_id, conversation_id)
    REFERENCES conversations (user_id, id) ON DELETE CASCADE
);

-- A create sent again with the same Idempotency-Key within 24 hours returns
-- the first result (resource_id) instead of creating anything.
CREATE TABLE idempotency_keys (
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  key          text NOT NULL,
  -- SHA-256 of the method and the request body: another body is a conflict.
  request_hash text NOT NULL,
  resource_id  uuid NOT NULL,
  created_at   timestamptz NOT NULL,
  PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_age_idx ON idempotency_keys (user_id, created_at);

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY conversations_owner ON conversations
  USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
  WITH CHECK (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid);

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY messages_owner ON messages
  USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
  WITH CHECK (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_owner ON idempotency_keys
  USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
  WITH CHECK (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON conversations, idempotency_keys
  TO chat_conversation;
GRANT SELECT, UPDATE ON conversations TO chat_message;
GRANT SELECT, INSERT, UPDATE, DELETE ON messages, idempotency_keys
  TO chat_message;
