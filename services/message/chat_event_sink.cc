#include "services/message/chat_event_sink.h"

#include <utility>

#include "common/grpc_status.h"
#include "services/message/message_proto.h"

namespace chat::message {

bool ChatEventSink::SendMessage(const MessageRecord& user_message) {
  chat::v1::ChatEvent event;
  ToProto(user_message, event.mutable_message());
  return Emit(std::move(event), false);
}

bool ChatEventSink::SendReply(const MessageRecord& reply) {
  chat::v1::ChatEvent event;
  ToProto(reply, event.mutable_reply());
  return Emit(std::move(event), false);
}

bool ChatEventSink::SendDelta(absl::string_view text, int64_t offset) {
  chat::v1::ChatEvent event;
  event.mutable_delta()->set_text(std::string(text));
  event.mutable_delta()->set_offset(static_cast<int32_t>(offset));
  return Emit(std::move(event), false);
}

bool ChatEventSink::SendDone(const MessageRecord& reply,
                             const ProviderUsage& usage) {
  chat::v1::ChatEvent event;
  ToProto(reply, event.mutable_done()->mutable_message());
  chat::v1::Usage* out = event.mutable_done()->mutable_usage();
  out->set_prompt_tokens(usage.prompt_tokens);
  out->set_completion_tokens(usage.completion_tokens);
  out->set_total_tokens(usage.total_tokens);
  return Emit(std::move(event), true);
}

void ChatEventSink::SendError(const absl::Status& error) {
  chat::v1::ChatEvent event;
  ToErrorEvent(error, request_id_, event.mutable_error());
  Emit(std::move(event), true);
}

}  // namespace chat::message
