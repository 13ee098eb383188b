#include "services/message/message_proto.h"

#include <string>
#include <utility>

#include "common/proto_metadata.h"
#include "common/proto_time.h"

namespace chat::message {
namespace {

// Record is const MessageRecord& (copies) or MessageRecord (moves): each
// member is forwarded once, so moving one leaves the others intact.
template <typename Record>
void FillProto(Record&& m, chat::v1::Message* out) {
  out->set_id(std::forward<Record>(m).id);
  out->set_conversation_id(std::forward<Record>(m).conversation_id);
  const absl::string_view role = RoleName(m.role);
  out->set_role(role.data(), role.size());
  out->set_content(std::forward<Record>(m).content);
  const absl::string_view status = StatusName(m.status);
  out->set_status(status.data(), status.size());
  // proto3: an empty string is the field unset; setting it would allocate.
  if (!m.model.empty()) out->set_model(std::forward<Record>(m).model);
  if (!m.metadata.empty()) MetadataToProto(m.metadata, out->mutable_metadata());
  SetTimestamp(m.created_at, out->mutable_created_at());
  SetTimestamp(m.updated_at, out->mutable_updated_at());
  // Set even when "" (a root): the field has presence, the API shows it.
  out->set_parent_id(std::forward<Record>(m).parent_id);
  out->set_sibling_index(m.sibling_index);
  out->set_sibling_count(m.sibling_count);
}

}  // namespace

void ToProto(const MessageRecord& m, chat::v1::Message* out) {
  FillProto(m, out);
}

void ToProto(MessageRecord&& m, chat::v1::Message* out) {
  FillProto(std::move(m), out);
}

}  // namespace chat::message
