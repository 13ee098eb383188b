#include "services/message/message_rows.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/db.h"
#include "common/metadata.h"

namespace chat::message {

MessageRecord MessageFromRow(const pqxx::row& row, int first) {
  MessageRecord m;
  m.id = row[first + 0].as<std::string>();
  m.conversation_id = row[first + 1].as<std::string>();
  m.seq = row[first + 2].as<int64_t>();
  // The table's CHECK constraints allow only the values the enums name.
  m.role = ParseRole(row[first + 3].as<std::string>()).value_or(Role::kUser);
  m.content = row[first + 4].as<std::string>();
  m.status = ParseStatus(row[first + 5].as<std::string>())
                 .value_or(MessageStatus::kComplete);
  m.model = row[first + 6].as<std::string>();
  m.metadata =
      MetadataFromJson(row[first + 7].as<std::string>()).value_or(Metadata{});
  m.created_at = FromPgMicros(row[first + 8].as<int64_t>());
  m.updated_at = FromPgMicros(row[first + 9].as<int64_t>());
  m.parent_id = row[first + 10].as<std::string>();
  m.sibling_index = row[first + 11].as<int>();
  m.sibling_count = row[first + 12].as<int>();
  return m;
}

std::string UuidArray(const std::vector<std::string>& ids) {
  return absl::StrCat("{", absl::StrJoin(ids, ","), "}");
}

}  // namespace chat::message
