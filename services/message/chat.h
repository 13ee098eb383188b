#ifndef CHAT_SERVICES_MESSAGE_CHAT_H_
#define CHAT_SERVICES_MESSAGE_CHAT_H_

// Assistant replies (docs/api.md "Assistant replies (Chat)"): store the
// user's message, build the context from the path from the root to it, ask
// the provider, stream the reply while it is produced, and store it under
// the user's message with what came: `complete`, `incomplete` when the
// client went away, `failed` when the provider failed. The user's message
// is stored before the provider is asked, so it is never lost. Regenerate
// does the same for a new version of a reply.

#include <string>

#include "absl/status/status.h"
#include "common/clock.h"
#include "services/message/messages.h"
#include "services/message/provider.h"
#include "services/message/stream_limiter.h"

namespace chat::message {

// Where the events of one reply go. The Send methods return false when the
// client is gone.
class ChatSink {
 public:
  virtual ~ChatSink() = default;
  virtual bool SendMessage(const MessageRecord& user_message) = 0;
  virtual bool SendDelta(absl::string_view text) = 0;
  virtual bool SendDone(const MessageRecord& reply,
                        const ProviderUsage& usage) = 0;
  virtual void SendError(const absl::Status& error) = 0;
  virtual bool Cancelled() = 0;
};

struct ChatOptions {
  // Sent first, as a system message, when not empty.
  std::string system_prompt;
  // Earlier messages go into the context newest first while their
  // characters fit this budget; older ones are dropped.
  size_t context_budget_chars = 24000;
  // At most this many earlier messages are read.
  int context_max_messages = 200;
  int max_streams_per_user = 4;
};

struct ChatInput {
  std::string content;
  std::string model;  // empty: the provider's default
  // Where the user's message goes (nullopt: under the active leaf).
  ParentChoice parent_id;
};

class Chats {
 public:
  Chats(MessageStore* storage, Provider* provider, const Clock* clock,
        ChatOptions options)
      : storage_(storage),
        provider_(provider),
        clock_(clock),
        options_(std::move(options)),
        limiter_(options_.max_streams_per_user) {}

  // Errors before the stream starts (bad input, no such conversation, too
  // many streams) are returned; once the user's message is stored, every
  // outcome goes to the sink and the result is OK.
  absl::Status Run(const std::string& user_id,
                   const std::string& conversation_id, const ChatInput& input,
                   ChatSink& sink);
  // A new version of the assistant message `id`: a sibling under the same
  // parent, asked with the same context, streamed as Run streams (without
  // the user's message). Errors as Run's; an id that is not an assistant
  // message is INVALID_ARGUMENT.
  absl::Status Regenerate(const std::string& user_id,
                          const std::string& conversation_id,
                          const std::string& id, const std::string& model,
                          ChatSink& sink);

 private:
  // Checks what both calls take: ids, the model's name.
  static absl::Status CheckRequest(const std::string& conversation_id,
                                   const std::string* message_id,
                                   const std::string* content,
                                   const ParentChoice& parent_id,
                                   const std::string& model);
  // The model's input: the path from the root to `last` (the newest
  // message first until the budget, `last` always), the system prompt
  // first. Only the system prompt when `last` is null.
  absl::StatusOr<std::vector<ProviderMessage>> Context(
      const std::string& user_id, const std::string& conversation_id,
      const MessageRecord* last);
  // Asks the provider with the context that ends at `last` (null: none),
  // streams the reply to the sink and stores it as the newest child of
  // `last` (null: a new root).
  void Reply(const std::string& user_id, const std::string& conversation_id,
             const MessageRecord* last, const std::string& model,
             ChatSink& sink);

  MessageStore* storage_;
  Provider* provider_;
  const Clock* clock_;
  ChatOptions options_;
  StreamLimiter limiter_;
};

// A title made from a conversation's first message: one line, at most 60
// characters, cut at a word.
std::string TitleFromMessage(absl::string_view content);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_CHAT_H_
