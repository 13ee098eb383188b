-- Starts read messages through indexes only (docs/architecture.md "The
-- path of a durable reply").
--
-- start_reply's per-user cap counts the user's replies in progress through
-- messages_in_progress_idx, which holds only the rows in progress: a few
-- per user. Its plan came from the table's statistics. Statistics taken
-- during a burst (thousands of the user's replies in progress at once)
-- made PostgreSQL expect thousands of matching rows, and so a sequential
-- scan that it hoped to stop early at the cap's LIMIT. Once the burst had
-- ended nothing matched, and every start read the whole table until the
-- next ANALYZE: 4 ms a start at 30,000 messages in `make bench`, and more
-- the bigger the table (BENCHMARKS.md, "The first delta after a burst").
--
-- Nothing a start reads is worth a sequential scan: the cap's count, the
-- conversation and its leaf, the reply's parent and siblings are all found
-- by index. With sequential scans priced out for the function's statements,
-- the plans use those indexes whatever the statistics say.
ALTER FUNCTION
  start_reply(uuid, uuid, bigint, integer, uuid, uuid, text, text, text, text,
              timestamptz, jsonb, uuid, uuid, text, text, text, text,
              timestamptz, jsonb)
  SET enable_seqscan = off;
