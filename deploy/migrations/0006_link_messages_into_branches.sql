-- chat-migrate: no-transaction
-- Links every existing conversation's messages into one branch, in batches
-- of 10,000 messages that each commit on their own (see
-- link_messages_into_branches in 0005).
CALL link_messages_into_branches(10000);
