-- Users of the configured external identity provider get their profile row
-- from the conversation or message service on first sight (docs/api.md "Auth").
-- Insert only: those services still cannot read or change accounts.
GRANT INSERT ON users TO chat_conversation, chat_message;
