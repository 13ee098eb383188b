-- Durable replies without a thread each (docs/architecture.md "The path of
-- a durable reply"): a message-service process stores the text of every
-- reply it generates in one statement per save interval, across users.
-- It may do that, and only that, for the replies in progress it owns and
-- while it names itself in the transaction (app.reply_owner, its owner
-- key): read them and update them, and they stay in progress and its own.
-- Every other statement stays bound to app.user_id.
CREATE POLICY messages_reply_owner_read ON messages FOR SELECT
  TO chat_message
  USING (status = 'in_progress'
         AND owner_key = NULLIF(current_setting('app.reply_owner', true),
                                '')::bigint);
CREATE POLICY messages_reply_owner ON messages FOR UPDATE TO chat_message
  USING (status = 'in_progress'
         AND owner_key = NULLIF(current_setting('app.reply_owner', true),
                                '')::bigint)
  WITH CHECK (status = 'in_progress'
              AND owner_key = NULLIF(current_setting('app.reply_owner', true),
                                     '')::bigint);
