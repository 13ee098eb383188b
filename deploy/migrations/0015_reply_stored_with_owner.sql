-- A reply in progress is stored with its owner, instead of stored and then
-- given its owner by an UPDATE (0010's start_reply). That UPDATE changed an
-- indexed column (messages_in_progress_idx), so it was never HOT: every
-- reply started wrote a second version of its row and an entry in each of
-- the messages' five indexes, and left a dead row for vacuum.
--
-- append_message takes the owner as an optional last parameter (NULL: none,
-- what the message service's appends pass by leaving it out). A function's
-- parameters cannot change in place, so the old one is dropped in the same
-- transaction; callers name it with ten arguments or eleven.
DROP FUNCTION append_message(uuid, uuid, uuid, uuid, text, text, text, text,
                             timestamptz, jsonb);

-- As in 0005_conversation_trees.sql, with p_owner stored as owner_key.
CREATE FUNCTION append_message(p_user_id uuid, p_conversation_id uuid,
                               p_id uuid, p_parent uuid, p_role text,
                               p_content text, p_status text, p_model text,
                               p_at timestamptz, p_metadata jsonb,
                               p_owner bigint DEFAULT NULL)
RETURNS TABLE (id text, conversation_id text, seq bigint, role text,
               content text, status text, model text, metadata text,
               created_us bigint, updated_us bigint, parent_id text,
               sibling_index bigint, sibling_count bigint)
LANGUAGE plpgsql SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_nil constant uuid := '00000000-0000-0000-0000-000000000000';
  v_leaf uuid;
  v_parent uuid;
  v_seq bigint;
  v_at timestamptz;
  v_siblings bigint;
BEGIN
  SELECT c.active_leaf_id INTO v_leaf FROM conversations c
   WHERE c.user_id = p_user_id AND c.id = p_conversation_id
   FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  v_parent := COALESCE(p_parent, v_leaf, v_nil);
  IF v_parent IS DISTINCT FROM COALESCE(v_leaf, v_nil) THEN
    IF v_parent <> v_nil THEN
      PERFORM 1 FROM messages m
       WHERE m.user_id = p_user_id AND m.conversation_id = p_conversation_id
         AND m.id = v_parent;
      IF NOT FOUND THEN
        RETURN;
      END IF;
    END IF;
    PERFORM set_active_path(p_user_id, p_conversation_id, v_parent);
  END IF;

  UPDATE conversations c
     SET message_count = c.message_count + 1, last_seq = c.last_seq + 1,
         last_message_at = GREATEST(c.last_message_at, p_at),
         updated_at = GREATEST(c.updated_at, p_at), active_leaf_id = p_id
   WHERE c.user_id = p_user_id AND c.id = p_conversation_id
  RETURNING c.last_seq, c.last_message_at INTO v_seq, v_at;
  INSERT INTO messages AS m (user_id, conversation_id, seq, id, parent_id,
                             active, role, content, status, model, metadata,
                             created_at, updated_at, owner_key)
  VALUES (p_user_id, p_conversation_id, v_seq, p_id, v_parent, true, p_role,
          p_content, p_status, p_model, p_metadata, v_at, v_at, p_owner);
  SELECT count(*) INTO v_siblings FROM messages m
   WHERE m.user_id = p_user_id AND m.conversation_id = p_conversation_id
     AND m.parent_id = v_parent;

  id := p_id::text;
  conversation_id := p_conversation_id::text;
  seq := v_seq;
  role := p_role;
  content := p_content;
  status := p_status;
  model := p_model;
  metadata := p_metadata::text;
  created_us := (extract(epoch FROM v_at) * 1000000)::bigint;
  updated_us := created_us;
  parent_id := COALESCE(NULLIF(v_parent, v_nil)::text, '');
  sibling_index := v_siblings - 1;
  sibling_count := v_siblings;
  RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION
  append_message(uuid, uuid, uuid, uuid, text, text, text, text, timestamptz,
                 jsonb, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  append_message(uuid, uuid, uuid, uuid, text, text, text, text, timestamptz,
                 jsonb, bigint) TO chat_message;

-- As in 0010_start_reply.sql, the reply appended with its owner. Its
-- parameters and grants are unchanged.
CREATE OR REPLACE FUNCTION start_reply(p_user_id uuid, p_conversation_id uuid,
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
                          p_reply_metadata, p_owner) AS a;
END
$$;
