#ifndef CHAT_SERVICES_MESSAGE_MESSAGE_ROWS_H_
#define CHAT_SERVICES_MESSAGE_MESSAGE_ROWS_H_

// How the message service's statements select a message and read it back:
// shared by the storage classes of services/message/ (messages, export).

#include <string>
#include <vector>

#include "common/db_reader.h"
#include "pqxx/pqxx"
#include "services/message/messages.h"

// A root's parent_id: "the siblings of m" is then one equality the
// children index answers (deploy/migrations/0005_conversation_trees.sql).
#define NIL_UUID "'00000000-0000-0000-0000-000000000000'::uuid"

namespace chat::message {
// The same as a parameter's text: a root's parent, a title's search entry.
inline constexpr char kNilUuid[] = "00000000-0000-0000-0000-000000000000";
}  // namespace chat::message

// The columns MessageFromRow reads, over a row `m` of messages joined with
// SIBLINGS; append_message returns the same columns.
#define MESSAGE_COLUMNS                                             \
  "m.id::text, m.conversation_id::text, m.seq, m.role, m.content, " \
  "m.status, m.model, m.metadata::text, "                           \
  "(extract(epoch FROM m.created_at) * 1000000)::bigint, "          \
  "(extract(epoch FROM m.updated_at) * 1000000)::bigint, "          \
  "COALESCE(NULLIF(m.parent_id, " NIL_UUID                          \
  ")::text, ''), s.sibling_index, "                                 \
  "s.sibling_count"

// How many columns MESSAGE_COLUMNS selects.
#define MESSAGE_COLUMN_COUNT 13

// The place of `m` among the messages that share its parent.
#define SIBLINGS                                                           \
  " CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE x.seq < m.seq) "     \
  "AS sibling_index, count(*) AS sibling_count FROM messages x "           \
  "WHERE x.user_id = m.user_id AND x.conversation_id = m.conversation_id " \
  "AND x.parent_id = m.parent_id) s "

namespace chat::message {

// The message of MESSAGE_COLUMNS, selected from column `first` on.
MessageRecord MessageFromRow(const pqxx::row& row, int first = 0);
// The same, of row `row` of a DbReader's answer.
MessageRecord MessageFromRow(const DbRows& rows, int row);

// A PostgreSQL array literal of UUIDs (which need no quoting), for a
// $n::uuid[] parameter.
std::string UuidArray(const std::vector<std::string>& ids);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGE_ROWS_H_
