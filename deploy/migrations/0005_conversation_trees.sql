-- Conversation trees (docs/api.md "Conversation trees"): every message has a
-- parent, edits and regenerated replies are siblings, and the conversation
-- remembers the leaf of its active branch.
--
-- This migration only adds columns (no table rewrite: the defaults are
-- constants) and functions, so its ACCESS EXCLUSIVE lock on messages and
-- conversations lasts milliseconds. 0006 links the existing messages into
-- one branch per conversation in small batches; 0007 builds the indexes.
--
--   messages.parent_id   the parent; the nil UUID for a root (a first
--                        message or a version of one), so that "the
--                        siblings of m" is one equality an index answers.
--                        NULL only on rows 0006 has not linked yet.
--   messages.active      true on the messages of the active branch: the
--                        path from a root to conversations.active_leaf_id.
--                        On a path, creation order (seq) is depth order, so
--                        the active branch pages by seq through a partial
--                        index, and "the active messages after m" are
--                        exactly the ones below m.
--   conversations.active_leaf_id
--                        the end of the active branch; NULL when empty.

ALTER TABLE messages
  ADD COLUMN parent_id uuid,
  -- Every existing conversation is one branch, all of it active.
  ADD COLUMN active boolean NOT NULL DEFAULT true;
ALTER TABLE conversations ADD COLUMN active_leaf_id uuid;

GRANT UPDATE (active_leaf_id) ON conversations TO chat_message;
-- ForkConversation makes a conversation of the message service's own.
GRANT INSERT ON conversations TO chat_message;

-- Makes the active branch the path from a root to p_leaf (the nil UUID:
-- no branch). Walks up from p_leaf to the first message already on the
-- active branch, takes the active messages below that one off it, and puts
-- the walked ones on it: the cost follows the part of the path that
-- changes, not the conversation's size. The caller holds the
-- conversation's row lock and has checked that p_leaf is its message.
CREATE FUNCTION set_active_path(p_user_id uuid, p_conversation_id uuid,
                                p_leaf uuid)
RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp
AS $$
DECLARE
  v_walked uuid[];
  v_fork_seq bigint;
BEGIN
  WITH RECURSIVE up AS (
    SELECT m.id, m.parent_id, m.active, m.seq FROM messages m
     WHERE m.user_id = p_user_id AND m.conversation_id = p_conversation_id
       AND m.id = p_leaf
    UNION ALL
    SELECT m.id, m.parent_id, m.active, m.seq FROM up
      JOIN messages m ON m.user_id = p_user_id
                     AND m.conversation_id = p_conversation_id
                     AND m.id = up.parent_id
     WHERE NOT up.active)
  SELECT array_agg(up.id) FILTER (WHERE NOT up.active),
         COALESCE(max(up.seq) FILTER (WHERE up.active), 0)
    INTO v_walked, v_fork_seq
    FROM up;

  UPDATE messages SET active = false
   WHERE user_id = p_user_id AND conversation_id = p_conversation_id
     AND active AND seq > v_fork_seq;
  IF v_walked IS NOT NULL THEN
    UPDATE messages SET active = true
     WHERE user_id = p_user_id AND conversation_id = p_conversation_id
       AND id = ANY (v_walked);
  END IF;
  UPDATE conversations
     SET active_leaf_id = NULLIF(p_leaf, '00000000-0000-0000-0000-000000000000')
   WHERE user_id = p_user_id AND id = p_conversation_id;
END
$$;
REVOKE ALL ON FUNCTION set_active_path(uuid, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_active_path(uuid, uuid, uuid) TO chat_message;

-- The newest leaf under p_message (the newest child at each step), or NULL
-- when p_message is not a message of the conversation.
CREATE FUNCTION newest_leaf_under(p_user_id uuid, p_conversation_id uuid,
                                  p_message uuid)
RETURNS uuid
LANGUAGE sql STABLE SET search_path = public, pg_temp
AS $$
  WITH RECURSIVE down AS (
    SELECT m.id, 0 AS depth FROM messages m
     WHERE m.user_id = p_user_id AND m.conversation_id = p_conversation_id
       AND m.id = p_message
    UNION ALL
    SELECT (SELECT c.id FROM messages c
             WHERE c.user_id = p_user_id
               AND c.conversation_id = p_conversation_id
               AND c.parent_id = down.id
             ORDER BY c.seq DESC LIMIT 1),
           down.depth + 1
      FROM down WHERE down.id IS NOT NULL)
  SELECT id FROM down WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1
$$;
REVOKE ALL ON FUNCTION newest_leaf_under(uuid, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION newest_leaf_under(uuid, uuid, uuid) TO chat_message;

-- PATCH /v1/conversations/{id} {"active_message_id": X}: the active branch
-- passes through X and ends at the newest leaf under it. Returns that leaf,
-- or NULL when the conversation or X is not the caller's. It runs as its
-- owner, so that the conversation service needs no rights on messages; the
-- owner may be a superuser whom row-level security does not bind, so it
-- checks the transaction's user itself.
CREATE FUNCTION activate_branch(p_user_id uuid, p_conversation_id uuid,
                                p_message uuid)
RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
  v_leaf uuid;
BEGIN
  IF p_user_id IS DISTINCT FROM
     NULLIF(current_setting('app.user_id', true), '')::uuid THEN
    RETURN NULL;
  END IF;
  PERFORM 1 FROM conversations
   WHERE user_id = p_user_id AND id = p_conversation_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  v_leaf := newest_leaf_under(p_user_id, p_conversation_id, p_message);
  IF v_leaf IS NOT NULL THEN
    PERFORM set_active_path(p_user_id, p_conversation_id, v_leaf);
  END IF;
  RETURN v_leaf;
END
$$;
REVOKE ALL ON FUNCTION activate_branch(uuid, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activate_branch(uuid, uuid, uuid)
  TO chat_conversation, chat_message;

-- Appends a message under p_parent (NULL: the leaf of the active branch;
-- the nil UUID: a new root) and makes it the active leaf, in one round
-- trip. Positions (seq) are handed out under the conversation's row lock,
-- so they follow commit order. The new message's created_at is never
-- earlier than the previous message's. Returns the stored message as the
-- message service reads it, or no row when the conversation or the parent
-- is not the caller's. Under an explicit parent that is not the active
-- leaf, the active branch moves there first (set_active_path).
CREATE FUNCTION append_message(p_user_id uuid, p_conversation_id uuid,
                               p_id uuid, p_parent uuid, p_role text,
                               p_content text, p_status text, p_model text,
                               p_at timestamptz, p_metadata jsonb)
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
                             created_at, updated_at)
  VALUES (p_user_id, p_conversation_id, v_seq, p_id, v_parent, true, p_role,
          p_content, p_status, p_model, p_metadata, v_at, v_at);
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
                 jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  append_message(uuid, uuid, uuid, uuid, text, text, text, text, timestamptz,
                 jsonb) TO chat_message;

-- Links the messages of existing conversations into one branch each, in
-- creation order: the parent of a message is the one before it. Batches of
-- p_batch messages, each in a transaction of its own, so it locks at most
-- p_batch message rows at a time and a conversation row only for the last
-- short step; safe to run again (it touches only rows not linked yet).
-- 0006 calls it; 0007 drops it.
-- (No SET clause: a procedure with one cannot COMMIT.)
CREATE PROCEDURE link_messages_into_branches(p_batch integer)
LANGUAGE plpgsql
AS $$
DECLARE
  v_user uuid;
  v_conversation uuid;
  v_low bigint;
  v_high bigint;
  v_previous uuid;
BEGIN
  FOR v_user IN SELECT id FROM users ORDER BY id LOOP
    -- Session-wide: COMMIT would end a transaction-local setting.
    PERFORM set_config('app.user_id', v_user::text, false);
    FOR v_conversation IN
      SELECT id FROM conversations
       WHERE user_id = v_user AND active_leaf_id IS NULL AND message_count > 0
       ORDER BY id
    LOOP
      v_low := 0;
      LOOP
        SELECT max(seq) INTO v_high FROM (
          SELECT seq FROM messages
           WHERE user_id = v_user AND conversation_id = v_conversation
             AND seq > v_low
           ORDER BY seq LIMIT p_batch) batch;
        EXIT WHEN v_high IS NULL;
        -- Linked to the one before, the first to the last message of the
        -- previous batch. Dynamic, so that each batch gets a plan for its
        -- own bounds (a cached generic plan scans far more than the batch).
        SELECT id INTO v_previous FROM messages
         WHERE user_id = v_user AND conversation_id = v_conversation
           AND seq <= v_low
         ORDER BY seq DESC LIMIT 1;
        EXECUTE
          'UPDATE messages m SET parent_id = linked.parent_id '
          'FROM (SELECT seq, COALESCE(lag(id) OVER (ORDER BY seq), $5) '
          '        AS parent_id FROM messages '
          '       WHERE user_id = $1 AND conversation_id = $2 '
          '         AND seq > $3 AND seq <= $4) linked '
          'WHERE m.user_id = $1 AND m.conversation_id = $2 '
          '  AND m.seq = linked.seq AND m.seq > $3 AND m.seq <= $4 '
          '  AND m.parent_id IS NULL'
          USING v_user, v_conversation, v_low, v_high,
                COALESCE(v_previous, '00000000-0000-0000-0000-000000000000');
        COMMIT;
        PERFORM set_config('app.user_id', v_user::text, false);
        v_low := v_high;
      END LOOP;
      UPDATE conversations
         SET active_leaf_id = (SELECT id FROM messages
                                WHERE user_id = v_user
                                  AND conversation_id = v_conversation
                                ORDER BY seq DESC LIMIT 1)
       WHERE user_id = v_user AND id = v_conversation;
      COMMIT;
      PERFORM set_config('app.user_id', v_user::text, false);
    END LOOP;
  END LOOP;
  PERFORM set_config('app.user_id', '', false);
END
$$;
