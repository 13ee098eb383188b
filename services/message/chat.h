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
//
// No reply holds a thread: the provider streams on its own threads (one for
// every request of the process, services/message/curl_multi_loop.h), the
// end of a reply is stored on a small pool, and the service calls
// SaveReplies and FollowReplies on a rhythm (every save_interval and
// poll_interval) for all replies at once.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/thread_pool.h"
#include "services/message/messages.h"
#include "services/message/provider.h"

namespace chat::message {

// Where the events of one reply go, one call at a time (from several
// threads in turn). The Send methods return false when the client is gone
// (the reply goes on without it) and do not block.
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
  // Threads that store the ends of replies; 0: the thread that ends the
  // provider's request does it (tests).
  int finish_threads = 0;
  // A reply whose text did not change is stored again (its updated_at
  // only) once this long passed since its last store: a sign that its
  // owner lives, well within REPLY_RECOVERY_GRACE.
  absl::Duration sign_of_life = absl::Milliseconds(2500);
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
  // Stops every reply in progress here and waits until each has ended.
  ~Chats();

  // Errors before the stream starts (bad input, no such conversation, too
  // many replies in progress) are returned; once the messages are stored,
  // every outcome goes to the sink and the result is OK. Returns once the
  // provider is asked; the reply goes on.
  absl::Status Run(const std::string& user_id,
                   const std::string& conversation_id, const ChatInput& input,
                   std::shared_ptr<ChatSink> sink);
  // A new version of the assistant message `id`: a sibling under the same
  // parent, asked with the same context, streamed as Run streams (without
  // the user's message). Errors as Run's; an id that is not an assistant
  // message is INVALID_ARGUMENT.
  absl::Status Regenerate(const std::string& user_id,
                          const std::string& conversation_id,
                          const std::string& id, const std::string& model,
                          std::shared_ptr<ChatSink> sink);
  // The reply's text after `after` characters as one delta, then what
  // follows until it ends, then done (or error). Works on any replica: a
  // reply generated here is followed live, another replica's through its
  // stored text (FollowReplies).
  absl::Status StreamReply(const std::string& user_id,
                           const std::string& conversation_id,
                           const std::string& id, int64_t after,
                           std::shared_ptr<ChatSink> sink);
  // Stops a reply in progress: incomplete with its text so far. A reply
  // this process generates stops at once; another replica's at its owner's
  // next SaveReplies. An ended reply is answered unchanged.
  absl::StatusOr<MessageRecord> CancelReply(const std::string& user_id,
                                            const std::string& conversation_id,
                                            const std::string& id);
  // Stores the text of every reply generated here that changed since the
  // last call, and a sign of life for those not stored for
  // `sign_of_life`, in one call to the store that also reads which are
  // still ours; a reply that is no longer ours (cancelled on another
  // replica, recovered) stops. Call it at least every 500 ms.
  void SaveReplies();
  // Sends the followers of other replicas' replies what their stored text
  // gained, and the end. Call it every poll interval.
  void FollowReplies();
  // The service is stopping: every reply in progress here ends incomplete.
  void Stop() { stopping_ = true; }

  // Replies generated here that have not ended.
  int live_count();

 private:
  class Generation;
  // A StreamReply client of another replica's reply.
  struct RemoteFollower {
    std::string user_id;
    std::string conversation_id;
    std::string id;
    int64_t sent = 0;  // characters the client has
    std::shared_ptr<ChatSink> sink;
  };

  // Checks what the calls take: ids, the model's name.
  absl::Status CheckRequest(const std::string& conversation_id,
                            const std::string* message_id,
                            const std::string* content,
                            const ParentChoice& parent_id,
                            const std::string& model) const;
  // What may be read above `last` for the model: the budget less `last`
  // itself.
  ContextLimits LimitsAbove(const MessageRecord& last) const;
  // The model's input: the system prompt, `earlier` (the messages above
  // `last`, newest first) oldest first, then `last`. Only the system
  // prompt when `last` is null.
  std::vector<ProviderMessage> ModelInput(std::vector<ContextMessage> earlier,
                                          const MessageRecord* last) const;
  // Asks the provider for `reply` (stored in progress) with `input`; the
  // generation streams it to the sink and Finish stores its end.
  void Generate(const std::string& user_id, const MessageRecord& reply,
                absl::StatusOr<std::vector<ProviderMessage>> input,
                std::shared_ptr<ChatSink> sink);
  void Finish(const std::shared_ptr<Generation>& generation,
              const absl::StatusOr<ProviderReply>& answer);
  // Sends a follower what `message` has after its `sent` characters, and
  // the end when it ended; false once the follower is done with.
  static bool Follow(const MessageRecord& message, int64_t& sent,
                     ChatSink& sink);
  MessageRecord NewReply(const std::string& conversation_id,
                         const std::string& model) const;

  MessageStore* storage_;
  Provider* provider_;
  const Clock* clock_;
  ChatOptions options_;
  std::atomic<bool> stopping_{false};

  std::mutex live_mutex_;
  std::condition_variable live_ended_;
  std::map<std::string, std::shared_ptr<Generation>> live_;  // by reply id

  std::mutex followers_mutex_;
  std::vector<RemoteFollower> followers_;

  // Last: it runs what is queued while the rest still stands.
  std::unique_ptr<Executor> finisher_;
};

// A title made from a conversation's first message: one line, at most 60
// characters, cut at a word.
std::string TitleFromMessage(absl::string_view content);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_CHAT_H_
