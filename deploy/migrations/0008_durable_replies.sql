-- Durable replies (docs/api.md "Durable replies"): an assistant reply is
-- stored with status in_progress when it starts and its text as it grows;
-- owner_key names the message-service process generating it.
--
-- A process holds the session-level advisory lock of its owner key on a
-- connection of its own for as long as it runs. PostgreSQL releases the
-- lock when that session ends (the process exited, crashed or lost the
-- database), so "pg_try_advisory_lock(owner_key) succeeds" means "the owner
-- is gone", whichever replica asks. A replica that finds such replies marks
-- them incomplete, keeping their stored text.
ALTER TABLE messages ADD COLUMN owner_key bigint;

-- Small: only replies in progress. Counts a user's replies in progress
-- (MAX_STREAMS_PER_USER across replicas) and finds the owners to check.
CREATE INDEX messages_in_progress_idx ON messages (user_id, owner_key)
  WHERE status = 'in_progress';

-- Finding replies of gone owners reads across users. The message service
-- may do that, and only that, while it says so in the transaction
-- (app.reply_recovery = 'on'): see replies in progress and make them
-- incomplete. Every other statement stays bound to app.user_id. (An
-- UPDATE's new row must also pass a SELECT policy, hence "or incomplete"
-- there; UPDATE itself reaches only rows in progress.)
CREATE POLICY messages_reply_recovery_read ON messages FOR SELECT
  TO chat_message
  USING (current_setting('app.reply_recovery', true) = 'on'
         AND status IN ('in_progress', 'incomplete'));
CREATE POLICY messages_reply_recovery ON messages FOR UPDATE TO chat_message
  USING (current_setting('app.reply_recovery', true) = 'on'
         AND status = 'in_progress')
  WITH CHECK (current_setting('app.reply_recovery', true) = 'on'
              AND status = 'incomplete');
