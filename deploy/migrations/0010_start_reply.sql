-- Starting a reply in one statement (docs/api.md "Durable replies"): the
-- per-user cap, the prompt (Chat) and the reply in progress with its owner
-- used to be six statements, each a round trip, all before the provider's
-- request could start.
--
-- Under the user's transaction-level advisory lock, so that two starts
-- anywhere cannot both take the last place, it counts the user's replies in
-- progress up to p_max_in_progress only (the partial index
-- messages_in_progress_idx: a user at the cap costs p_max rows, not all of
-- them). At the cap it returns one row with part = 'capped' and stores
-- nothing. Otherwise it appends the prompt when p_prompt_id is not NULL
-- (under p_prompt_parent, as append_message takes a parent) and then the
-- reply (under the prompt, else under p_reply_parent), gives the reply its
-- owner, and returns their rows as append_message does, with part =
-- 'prompt' or 'reply'. No row at all: the conversation or a parent is not
-- the caller's (the caller rolls back).
CREATE FUNCTION start_reply(p_user_id uuid, p_conversation_id uuid,
                            p_owner bigint, p_max_in_progress integer,
                            p_prompt_id uuid, p_prompt_parent uuid,
                            p_prompt_role text, p_prompt_content text,
                            p_prompt_status text, p_prompt_model text,
                            p_prompt_at timestamptz, p_prompt_metadata jsonb,
                            p_reply_id uuid, p_reply_parent uuid,
                            p_reply_role text, p_reply_content text,
                            p_reply_status text, p_reply_model text,
                            p_reply_at timestamptz, p_reply_metadata jsonb)
RETURNS TABLE (id text, conversation_id text, seq bigint, role text,
               content text, status text, model text, metadata text,
               created_us bigint, updated_us bigint, parent_id text,
               sibling_index bigint, sibling_count bigint, part text)
LANGUAGE plpgsql SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_reply_parent uuid := p_reply_parent;
  v_in_progress bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(
    hashtextextended('replies:' || p_user_id::text, 0));
  SELECT count(*) INTO v_in_progress FROM (
    SELECT 1 FROM messages m
     WHERE m.user_id = p_user_id AND m.status = 'in_progress'
     LIMIT p_max_in_progress) AS r;
  IF v_in_progress >= p_max_in_progress THEN
    part := 'capped';
    RETURN NEXT;
    RETURN;
  END IF;

  IF p_prompt_id IS NOT NULL THEN
    RETURN QUERY
      SELECT a.*, 'prompt'::text
        FROM append_message(p_user_id, p_conversation_id, p_prompt_id,
                            p_prompt_parent, p_prompt_role, p_prompt_content,
                            p_prompt_status, p_prompt_model, p_prompt_at,
                            p_prompt_metadata) AS a;
    IF NOT FOUND THEN
      RETURN;
    END IF;
    v_reply_parent := p_prompt_id;
  END IF;

  RETURN QUERY
    SELECT a.*, 'reply'::text
      FROM append_message(p_user_id, p_conversation_id, p_reply_id,
                          v_reply_parent, p_reply_role, p_reply_content,
                          p_reply_status, p_reply_model, p_reply_at,
                          p_reply_metadata) AS a;
  IF FOUND THEN
    UPDATE messages m SET owner_key = p_owner
     WHERE m.user_id = p_user_id AND m.conversation_id = p_conversation_id
       AND m.id = p_reply_id;
  END IF;
END
$$;
REVOKE ALL ON FUNCTION
  start_reply(uuid, uuid, bigint, integer, uuid, uuid, text, text, text, text,
              timestamptz, jsonb, uuid, uuid, text, text, text, text,
              timestamptz, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  start_reply(uuid, uuid, bigint, integer, uuid, uuid, text, text, text, text,
              timestamptz, jsonb, uuid, uuid, text, text, text, text,
              timestamptz, jsonb) TO chat_message;
