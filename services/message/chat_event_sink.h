#ifndef CHAT_SERVICES_MESSAGE_CHAT_EVENT_SINK_H_
#define CHAT_SERVICES_MESSAGE_CHAT_EVENT_SINK_H_

// A reply's events as the contract's ChatEvents, for the calls that carry
// them: one call of Chat, Regenerate or StreamReply
// (services/message/chat_event_stream.h), or one stream of many on a
// Multiplex call (services/message/multiplexed_streams.h).

#include <string>

#include "chat/v1/message.pb.h"
#include "services/message/chat.h"

namespace chat::message {

class ChatEventSink : public ChatSink {
 public:
  explicit ChatEventSink(std::string request_id)
      : request_id_(std::move(request_id)) {}

  bool SendMessage(const MessageRecord& user_message) final;
  bool SendReply(const MessageRecord& reply) final;
  bool SendDelta(absl::string_view text, int64_t offset) final;
  bool SendDone(const MessageRecord& reply, const ProviderUsage& usage) final;
  void SendError(const absl::Status& error) final;

 protected:
  // Queues `event` without blocking; false once the client is gone.
  // `last`: nothing follows it.
  virtual bool Emit(chat::v1::ChatEvent event, bool last) = 0;

 private:
  std::string request_id_;  // of the call, for the error event
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_CHAT_EVENT_SINK_H_
