#include "services/message/message_rows.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/db.h"
#include "common/db_reader.h"
#include "common/metadata.h"

namespace chat::message {

namespace {

// A page reads 13 columns of up to 51 rows: each column once, copied only
// into its destination. Columns is ColumnReader or DbColumnReader.
template <typename Columns>
MessageRecord MessageFromColumns(Columns column) {
  MessageRecord m;
  m.id = column.String();
  m.conversation_id = column.String();
  m.seq = column.template As<int64_t>();
  // The table's CHECK constraints allow only the values the enums name.
  m.role = ParseRole(column.Text()).value_or(Role::kUser);
  m.content = column.String();
  m.status = ParseStatus(column.Text()).value_or(MessageStatus::kComplete);
  m.model = column.String();
  m.metadata = MetadataFromJson(column.Text()).value_or(Metadata{});
  m.created_at = FromPgMicros(column.template As<int64_t>());
  m.updated_at = FromPgMicros(column.template As<int64_t>());
  m.parent_id = column.String();
  m.sibling_index = column.template As<int>();
  m.sibling_count = column.template As<int>();
  return m;
}

}  // namespace

MessageRecord MessageFromRow(const pqxx::row& row, int first) {
  return MessageFromColumns(ColumnReader(row, first));
}

MessageRecord MessageFromRow(const DbRows& rows, int row) {
  return MessageFromColumns(DbColumnReader(rows, row));
}

std::string UuidArray(const std::vector<std::string>& ids) {
  return absl::StrCat("{", absl::StrJoin(ids, ","), "}");
}

}  // namespace chat::message
