#include "services/message/message_proto.h"

#include <string>

#include "common/proto_metadata.h"
#include "common/proto_time.h"

namespace chat::message {

void ToProto(const MessageRecord& m, chat::v1::Message* out) {
  out->set_id(m.id);
  out->set_conversation_id(m.conversation_id);
  out->set_role(std::string(RoleName(m.role)));
  out->set_content(m.content);
  out->set_status(std::string(StatusName(m.status)));
  out->set_model(m.model);
  MetadataToProto(m.metadata, out->mutable_metadata());
  SetTimestamp(m.created_at, out->mutable_created_at());
  SetTimestamp(m.updated_at, out->mutable_updated_at());
  out->set_parent_id(m.parent_id);
  out->set_sibling_index(m.sibling_index);
  out->set_sibling_count(m.sibling_count);
}

}  // namespace chat::message
