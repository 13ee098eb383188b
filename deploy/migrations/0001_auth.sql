-- Accounts, refresh-token families and the failed-login throttle, plus the
-- least-privilege role of each service. Every table carries user_id so the
-- schema can later be distributed by it.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chat_auth') THEN
    CREATE ROLE chat_auth LOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chat_conversation') THEN
    CREATE ROLE chat_conversation LOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chat_message') THEN
    CREATE ROLE chat_message LOGIN;
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO chat_auth, chat_conversation, chat_message;

CREATE TABLE users (
  id            uuid PRIMARY KEY,
  username      text NOT NULL,
  email         text NOT NULL,
  -- argon2id in PHC string form.
  password_hash text NOT NULL,
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- One family per login: every refresh token descended from that login.
CREATE TABLE refresh_token_families (
  id         uuid PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL,
  revoked_at timestamptz
);
CREATE INDEX refresh_token_families_user_idx ON refresh_token_families (user_id);

-- Only the SHA-256 of a token is kept.
CREATE TABLE refresh_tokens (
  token_hash bytea PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  family_id  uuid NOT NULL REFERENCES refresh_token_families (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  -- Set when the token was traded for a new pair.
  rotated_at timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE login_failures (
  user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  failed_at timestamptz NOT NULL
);
CREATE INDEX login_failures_user_time_idx ON login_failures (user_id, failed_at);

GRANT SELECT, INSERT, UPDATE, DELETE
  ON users, refresh_token_families, refresh_tokens, login_failures
  TO chat_auth;
