#ifndef CHAT_SERVICES_MESSAGE_CHAT_H_
#define CHAT_SERVICES_MESSAGE_CHAT_H_

// Assistant replies (docs/api.md "Assistant replies (Chat)" and "Durable
// replies"): store the user's message and the assistant's, in progress,
// build the context from the path from the root, ask the provider, and
// stream the reply while it is produced. The reply is generated to its end
// whatever happens to the client's connection; its text is stored while it
// grows, and it ends `complete`, `incomplete` (cancelled, or the service
// stopping) or `failed` (the provider failed). Regenerate does the same for
// a new version of a reply; StreamReply follows a reply from any replica;
// CancelReply stops one on any replica.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/clock.h"
#include "services/message/messages.h"
#include "services/message/provider.h"

namespace chat::message {

// Where the events of one reply go. The Send methods return false when the
// client is gone (the reply goes on without it).
class ChatSink {
 public:
  virtual ~ChatSink() = default;
  virtual bool SendMessage(const MessageRecord& user_message) = 0;
  virtual bool SendReply(const MessageRecord& reply) = 0;
  // `offset`: characters of the reply before `text`.
  virtual bool SendDelta(absl::string_view text, int64_t offset) = 0;
  virtual bool SendDone(const MessageRecord& reply,
                        const ProviderUsage& usage) = 0;
  virtual void SendError(const absl::Status& error) = 0;
  // True once the client is gone.
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
  // Replies one user may have in progress at once, across replicas.
  int max_streams_per_user = 4;
  // Models a request may name besides the provider's default.
  std::vector<std::string> allowed_models;
  // This process's key as the owner of the replies it generates.
  int64_t owner = 1;
  // While a reply changes, its text is stored (and its state checked) at
  // least this often.
  absl::Duration save_interval = absl::Milliseconds(500);
  // How often StreamReply looks at the stored reply for new text.
  absl::Duration poll_interval = absl::Milliseconds(200);
  // How StreamReply waits between looks; a real sleep by default.
  std::function<void(absl::Duration)> sleep;
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
        ChatOptions options);

  // Errors before the stream starts (bad input, no such conversation, too
  // many replies in progress) are returned; once the messages are stored,
  // every outcome goes to the sink and the result is OK.
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
  // The reply's text after `after` characters as one delta, then what
  // follows until it ends, then done (or error). Works on any replica.
  absl::Status StreamReply(const std::string& user_id,
                           const std::string& conversation_id,
                           const std::string& id, int64_t after,
                           ChatSink& sink);
  // Stops a reply in progress: incomplete with its text so far. A reply
  // this process generates stops at once; another replica's within
  // save_interval. An ended reply is answered unchanged.
  absl::StatusOr<MessageRecord> CancelReply(const std::string& user_id,
                                            const std::string& conversation_id,
                                            const std::string& id);
  // The service is stopping: every reply in progress here ends incomplete.
  void Stop() { stopping_ = true; }

 private:
  // A reply this process generates.
  struct Live {
    std::atomic<bool> cancel{false};
    std::mutex mutex;
    std::condition_variable ended_cv;
    bool ended = false;
  };

  // Checks what the calls take: ids, the model's name.
  absl::Status CheckRequest(const std::string& conversation_id,
                            const std::string* message_id,
                            const std::string* content,
                            const ParentChoice& parent_id,
                            const std::string& model) const;
  // The model's input: the path from the root to `last` (the newest
  // message first until the budget, `last` always), the system prompt
  // first. Only the system prompt when `last` is null.
  absl::StatusOr<std::vector<ProviderMessage>> Context(
      const std::string& user_id, const std::string& conversation_id,
      const MessageRecord* last);
  // Generates `reply` (stored in progress) from the context that ends at
  // `last` (null: none), streams it to the sink while the client stays,
  // stores its text as it grows and its end.
  void Generate(const std::string& user_id, const MessageRecord* last,
                const MessageRecord& reply, ChatSink& sink);
  MessageRecord NewReply(const std::string& conversation_id,
                         const std::string& model) const;

  MessageStore* storage_;
  Provider* provider_;
  const Clock* clock_;
  ChatOptions options_;
  std::atomic<bool> stopping_{false};
  std::mutex live_mutex_;
  std::map<std::string, std::shared_ptr<Live>> live_;  // by reply id
};

// A title made from a conversation's first message: one line, at most 60
// characters, cut at a word.
std::string TitleFromMessage(absl::string_view content);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_CHAT_H_
