-- The row-level policies of messages, each setting read once per statement.
--
-- messages has five policies for chat_message, OR'ed together; written as
-- `user_id = NULLIF(current_setting(...))::uuid` they are a per-row filter
-- that calls current_setting() three times for every row a query reads
-- (1.3 ms of a 1.5 ms count of 600 replies in progress). Inside a scalar
-- subquery each becomes an InitPlan, evaluated once per statement, and the
-- per-row filter compares values only. The predicates are unchanged.
ALTER POLICY messages_owner ON messages
  USING (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid))
  WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid));
ALTER POLICY messages_reply_owner ON messages
  USING (status = 'in_progress' AND owner_key = (SELECT NULLIF(current_setting('app.reply_owner', true), '')::bigint))
  WITH CHECK (status = 'in_progress' AND owner_key = (SELECT NULLIF(current_setting('app.reply_owner', true), '')::bigint));
ALTER POLICY messages_reply_owner_read ON messages
  USING (status = 'in_progress' AND owner_key = (SELECT NULLIF(current_setting('app.reply_owner', true), '')::bigint));
ALTER POLICY messages_reply_recovery ON messages
  USING ((SELECT current_setting('app.reply_recovery', true) = 'on') AND status = 'in_progress')
  WITH CHECK ((SELECT current_setting('app.reply_recovery', true) = 'on') AND status = 'incomplete');
ALTER POLICY messages_reply_recovery_read ON messages
  USING ((SELECT current_setting('app.reply_recovery', true) = 'on') AND status IN ('in_progress', 'incomplete'));
