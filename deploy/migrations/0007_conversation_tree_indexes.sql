-- The indexes of conversation trees, built once 0006 has linked every
-- message (building them first would index every row twice). Each build
-- holds a SHARE lock on messages: reads go on, writes wait for it.

-- The children of a message in creation order: sibling_index and
-- sibling_count, the newest leaf under a message, subtrees.
CREATE INDEX messages_children_idx
  ON messages (user_id, conversation_id, parent_id, seq);
-- The active branch in order, whatever else the conversation holds.
CREATE INDEX messages_active_branch_idx
  ON messages (user_id, conversation_id, seq) WHERE active;

DROP PROCEDURE link_messages_into_branches(integer);
