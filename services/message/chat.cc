#include "services/message/chat.h"

#include <algorithm>
#include <condition_variable>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "services/message/messages.h"

namespace chat::message {
namespace {

constexpr size_t kMaxTitle = 60;
constexpr size_t kMaxModelName = 128;

}  // namespace

std::string TitleFromMessage(absl::string_view content) {
  std::string title;
  for (absl::string_view word : absl::StrSplit(
           content, absl::ByAnyChar(" \t\r\n\f\v"), absl::SkipEmpty())) {
    const std::string candidate =
        title.empty() ? std::string(word) : absl::StrCat(title, " ", word);
    if (CountCodePoints(candidate).value_or(kMaxTitle + 1) > kMaxTitle) {
      if (title.empty()) {
        // One long word: cut it at a character boundary.
        size_t bytes = 0;
        for (size_t chars = 0; chars < kMaxTitle - 1 && bytes < word.size();
             ++chars) {
          bytes += std::max<size_t>(1, Utf8SequenceLength(word.substr(bytes)));
        }
        title = std::string(word.substr(0, bytes));
      }
      return absl::StrCat(title, "\xE2\x80\xA6");  // …
    }
    title = candidate;
  }
  return title;
}

// A reply generated here: what the provider streams goes to the client
// and the followers, and into the text SaveReplies stores.
class Chats::Generation final
    : public ProviderStream,
      public std::enable_shared_from_this<Generation> {
 public:
  Generation(Chats* chats, std::string user_id, MessageRecord reply,
             std::shared_ptr<ChatSink> client)
      : chats_(chats),
        user_id_(std::move(user_id)),
        reply_(std::move(reply)),
        client_(std::move(client)) {}

  const std::string& user_id() const { return user_id_; }
  const MessageRecord& reply() const { return reply_; }

  bool OnText(absl::string_view piece) override {
    std::lock_guard<std::mutex> lock(mutex_);
    const int64_t at = chars_;
    const int64_t length =
        static_cast<int64_t>(CountCodePoints(piece).value_or(piece.size()));
    text_.append(piece.data(), piece.size());
    chars_ += length;
    ++version_;
    if (client_here_ && !client_->SendDelta(piece, at)) {
      client_here_ = false;  // the reply goes on without the client
    }
    for (auto f = followers_.begin(); f != followers_.end();) {
      // A follower that asked for a later offset gets only what it lacks.
      bool here = true;
      if (f->sent < chars_) {
        const int64_t skip = std::max<int64_t>(0, f->sent - at);
        here = f->sink->SendDelta(
            piece.substr(ByteOffsetOfCodePoint(piece, skip)), at + skip);
        f->sent = chars_;
      }
      f = here ? std::next(f) : followers_.erase(f);
    }
    return !StopRequested();
  }

  bool ShouldStop() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (client_here_ && client_->Cancelled()) client_here_ = false;
    return StopRequested();
  }

  void OnEnd(absl::StatusOr<ProviderReply> answer) override {
    chats_->finisher_->Schedule(
        [chats = chats_, self = shared_from_this(),
         answer = std::move(answer)] { chats->Finish(self, answer); });
  }

  void Cancel() { cancel_ = true; }
  void TakeAway() { taken_away_ = true; }

  // What SaveReplies stores of it at `now`: its text unless it stored
  // this version; without, a sign of life once `sign_of_life` passed since
  // the last store. `version` is what Saved takes back.
  ReplyText ToSave(absl::Time now, absl::Duration sign_of_life,
                   int64_t& version) {
    std::lock_guard<std::mutex> lock(mutex_);
    version = version_;
    ReplyText save{user_id_, reply_.conversation_id, reply_.id};
    if (version_ != saved_version_) {
      save.text = text_;
    } else {
      save.touch = now - saved_at_ >= sign_of_life;
    }
    return save;
  }
  void Saved(const ReplyText& save, int64_t version, absl::Time now) {
    std::lock_guard<std::mutex> lock(mutex_);
    saved_version_ = std::max(saved_version_, version);
    if (save.text || save.touch) saved_at_ = std::max(saved_at_, now);
  }

  // Adds a follower from `after` characters on: false when the reply has
  // ended (the caller reads the stored end instead).
  bool AddFollower(std::shared_ptr<ChatSink> sink, int64_t after) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ended_) return false;
    int64_t sent = after;
    if (after < chars_) {
      const absl::string_view rest =
          absl::string_view(text_).substr(ByteOffsetOfCodePoint(text_, after));
      if (!sink->SendDelta(rest, after)) return true;
      sent = chars_;
    }
    followers_.push_back({std::move(sink), sent});
    return true;
  }

  std::string text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_;
  }

  // The reply ended as `stored` (or failed with `error`): tells everyone
  // and wakes CancelReply.
  void End(const absl::StatusOr<MessageRecord>& stored,
           const absl::Status& failure, const ProviderUsage& usage) {
    std::vector<std::shared_ptr<ChatSink>> sinks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ended_ = true;
      // Also to a client that is gone: its sink may still hold the call.
      sinks.push_back(std::move(client_));
      for (Follower& f : followers_) sinks.push_back(std::move(f.sink));
      followers_.clear();
    }
    ended_cv_.notify_all();
    for (const std::shared_ptr<ChatSink>& sink : sinks) {
      if (!stored.ok()) {
        sink->SendError(stored.status());
      } else if (!failure.ok()) {
        sink->SendError(failure);
      } else {
        sink->SendDone(*stored, usage);
      }
    }
  }

  // Waits until End, at most `limit`; true when it ended.
  bool WaitEnded(absl::Duration limit) {
    std::unique_lock<std::mutex> lock(mutex_);
    return ended_cv_.wait_for(lock, absl::ToChronoNanoseconds(limit),
                              [this] { return ended_; });
  }

 private:
  struct Follower {
    std::shared_ptr<ChatSink> sink;
    int64_t sent;
  };

  bool StopRequested() const {
    return cancel_.load() || taken_away_.load() || chats_->stopping_.load();
  }

  Chats* chats_;
  const std::string user_id_;
  const MessageRecord reply_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> taken_away_{false};

  std::mutex mutex_;
  std::condition_variable ended_cv_;
  std::string text_;
  int64_t chars_ = 0;  // characters of text_
  int64_t version_ = 0;
  int64_t saved_version_ = 0;
  absl::Time saved_at_ = reply_.updated_at;  // StartReply stored it
  std::shared_ptr<ChatSink> client_;
  bool client_here_ = true;  // writes to the client still go through
  std::vector<Follower> followers_;
  bool ended_ = false;
};

Chats::Chats(MessageStore* storage, Provider* provider, const Clock* clock,
             ChatOptions options)
    : storage_(storage),
      provider_(provider),
      clock_(clock),
      options_(std::move(options)) {
  if (options_.finish_threads > 0) {
    finisher_ = std::make_unique<ThreadPool>(options_.finish_threads);
  } else {
    finisher_ = std::make_unique<InlineExecutor>();
  }
}

Chats::~Chats() {
  Stop();
  std::unique_lock<std::mutex> lock(live_mutex_);
  live_ended_.wait(lock, [this] { return live_.empty(); });
}

int Chats::live_count() {
  std::lock_guard<std::mutex> lock(live_mutex_);
  return static_cast<int>(live_.size());
}

absl::Status Chats::CheckRequest(const std::string& conversation_id,
                                 const std::string* message_id,
                                 const std::string* content,
                                 const ParentChoice& parent_id,
                                 const std::string& model) const {
  RETURN_IF_ERROR(CheckResourceId("conversation", conversation_id));
  if (message_id != nullptr) {
    RETURN_IF_ERROR(CheckResourceId("message", *message_id));
  }
  FieldViolations violations;
  if (content != nullptr) ValidateContent("content", *content, violations);
  ValidateParent("parent_id", parent_id, violations);
  if (model.size() > kMaxModelName) {
    violations.Add("model", "must be at most 128 bytes long");
  } else if (!model.empty() && model != provider_->default_model() &&
             std::find(options_.allowed_models.begin(),
                       options_.allowed_models.end(),
                       model) == options_.allowed_models.end()) {
    violations.Add("model", "is not one of the configured models");
  }
  return violations.ToStatus();
}

ContextLimits Chats::LimitsAbove(const MessageRecord& last) const {
  return {.max_messages = options_.context_max_messages,
          .budget_chars =
              static_cast<int64_t>(options_.context_budget_chars) -
              static_cast<int64_t>(CountCodePoints(last.content).value_or(0))};
}

std::vector<ProviderMessage> Chats::ModelInput(
    std::vector<ContextMessage> earlier, const MessageRecord* last) const {
  std::vector<ProviderMessage> input;
  for (ContextMessage& m : earlier) {  // newest first
    input.push_back({m.role, std::move(m.content)});
  }
  if (!options_.system_prompt.empty())
    input.push_back({Role::kSystem, options_.system_prompt});
  std::reverse(input.begin(), input.end());
  if (last != nullptr) input.push_back({last->role, last->content});
  return input;
}

MessageRecord Chats::NewReply(const std::string& conversation_id,
                              const std::string& model) const {
  const absl::Time now = ToMicroseconds(clock_->Now());
  return {.id = NewUuidV7(now),
          .conversation_id = conversation_id,
          .role = Role::kAssistant,
          .content = "",
          .status = MessageStatus::kInProgress,
          .model = model.empty() ? provider_->default_model() : model,
          .created_at = now,
          .updated_at = now};
}

absl::Status Chats::Run(const std::string& user_id,
                        const std::string& conversation_id,
                        const ChatInput& input,
                        std::shared_ptr<ChatSink> sink) {
  RETURN_IF_ERROR(CheckRequest(conversation_id, nullptr, &input.content,
                               input.parent_id, input.model));
  const absl::Time now = ToMicroseconds(clock_->Now());
  const MessageRecord prompt{.id = NewUuidV7(now),
                             .conversation_id = conversation_id,
                             .role = Role::kUser,
                             .content = input.content,
                             .status = MessageStatus::kComplete,
                             .created_at = now,
                             .updated_at = now};
  ASSIGN_OR_RETURN(
      StartedReply started,
      storage_->StartReply(user_id, prompt, input.parent_id,
                           NewReply(conversation_id, input.model), std::nullopt,
                           options_.owner, options_.max_streams_per_user,
                           LimitsAbove(prompt)));
  if (sink->SendMessage(*started.prompt)) sink->SendReply(started.reply);
  Generate(user_id, started.reply,
           ModelInput(std::move(started.context), &*started.prompt),
           std::move(sink));
  return absl::OkStatus();
}

absl::Status Chats::Regenerate(const std::string& user_id,
                               const std::string& conversation_id,
                               const std::string& id, const std::string& model,
                               std::shared_ptr<ChatSink> sink) {
  RETURN_IF_ERROR(
      CheckRequest(conversation_id, &id, nullptr, std::nullopt, model));
  ASSIGN_OR_RETURN(MessageRecord original,
                   storage_->Get(user_id, conversation_id, id));
  if (original.role != Role::kAssistant) {
    return ErrorWithViolations(absl::StatusCode::kInvalidArgument,
                               "only an assistant message can be regenerated",
                               {{"id", "must name an assistant message"}});
  }
  std::optional<MessageRecord> prompt;
  if (!original.parent_id.empty()) {
    ASSIGN_OR_RETURN(
        prompt, storage_->Get(user_id, conversation_id, original.parent_id));
  }
  ASSIGN_OR_RETURN(
      StartedReply started,
      storage_->StartReply(user_id, std::nullopt, std::nullopt,
                           NewReply(conversation_id, model), original.parent_id,
                           options_.owner, options_.max_streams_per_user,
                           ContextLimits{}));
  sink->SendReply(started.reply);
  // The reply is stored: from here on a failure ends it (Generate).
  absl::StatusOr<std::vector<ContextMessage>> earlier =
      std::vector<ContextMessage>{};
  if (prompt) {
    const ContextLimits limits = LimitsAbove(*prompt);
    if (limits.budget_chars > 0) {
      earlier =
          storage_->ContextPath(user_id, conversation_id, prompt->parent_id,
                                limits.max_messages, limits.budget_chars);
    }
  }
  absl::StatusOr<std::vector<ProviderMessage>> input;
  if (earlier.ok()) {
    input = ModelInput(*std::move(earlier), prompt ? &*prompt : nullptr);
  } else {
    input = earlier.status();
  }
  Generate(user_id, started.reply, std::move(input), std::move(sink));
  return absl::OkStatus();
}

void Chats::Generate(const std::string& user_id, const MessageRecord& reply,
                     absl::StatusOr<std::vector<ProviderMessage>> input,
                     std::shared_ptr<ChatSink> sink) {
  auto generation =
      std::make_shared<Generation>(this, user_id, reply, std::move(sink));
  {
    std::lock_guard<std::mutex> lock(live_mutex_);
    live_[reply.id] = generation;
  }
  if (!input.ok()) {
    generation->OnEnd(input.status());
    return;
  }
  provider_->Start(reply.model, *std::move(input), std::move(generation));
}

void Chats::Finish(const std::shared_ptr<Generation>& generation,
                   const absl::StatusOr<ProviderReply>& answer) {
  const std::string& user_id = generation->user_id();
  const MessageRecord& reply = generation->reply();
  const std::string& conversation_id = reply.conversation_id;
  MessageStatus status = MessageStatus::kComplete;
  if (!answer.ok()) {
    status = answer.status().code() == absl::StatusCode::kCancelled
                 ? MessageStatus::kIncomplete
                 : MessageStatus::kFailed;
    log::Warn("reply not complete",
              {{"status", std::string(StatusName(status))},
               {"error", answer.status().message()}});
  }
  const absl::Time done_at = ToMicroseconds(clock_->Now());
  absl::StatusOr<std::optional<MessageRecord>> finished = storage_->FinishReply(
      user_id, conversation_id, reply.id, options_.owner, generation->text(),
      status, answer.ok() ? answer->model : reply.model, done_at);
  absl::StatusOr<MessageRecord> stored =
      !finished.ok() ? absl::StatusOr<MessageRecord>(finished.status())
      : finished->has_value()
          ? absl::StatusOr<MessageRecord>(**finished)
          // Cancelled or recovered elsewhere: it is as that left it.
          : storage_->Get(user_id, conversation_id, reply.id);
  if (stored.ok() && status == MessageStatus::kComplete &&
      finished->has_value()) {
    absl::StatusOr<bool> named = storage_->NameUntitled(
        user_id, conversation_id, TitleFromMessage, done_at);
    if (!named.ok())
      log::Warn("cannot name the conversation",
                {{"error", named.status().message()}});
  }
  generation->End(
      stored,
      status == MessageStatus::kFailed ? answer.status() : absl::OkStatus(),
      answer.ok() ? answer->usage : ProviderUsage{});
  // Last: the destructor waits for this.
  std::lock_guard<std::mutex> lock(live_mutex_);
  live_.erase(reply.id);
  live_ended_.notify_all();
}

bool Chats::Follow(const MessageRecord& message, int64_t& sent,
                   ChatSink& sink) {
  const absl::string_view text = message.content;
  const size_t from = ByteOffsetOfCodePoint(text, sent);
  if (from < text.size()) {
    const absl::string_view rest = text.substr(from);
    if (!sink.SendDelta(rest, sent)) return false;
    sent += static_cast<int64_t>(CountCodePoints(rest).value_or(0));
  }
  if (message.status == MessageStatus::kFailed) {
    sink.SendError(absl::UnavailableError("the reply failed"));
    return false;
  }
  if (message.status != MessageStatus::kInProgress) {
    sink.SendDone(message, {});
    return false;
  }
  return !sink.Cancelled();
}

absl::Status Chats::StreamReply(const std::string& user_id,
                                const std::string& conversation_id,
                                const std::string& id, int64_t after,
                                std::shared_ptr<ChatSink> sink) {
  RETURN_IF_ERROR(CheckResourceId("conversation", conversation_id));
  RETURN_IF_ERROR(CheckResourceId("message", id));
  if (after < 0) {
    return ErrorWithViolations(absl::StatusCode::kInvalidArgument,
                               "validation failed",
                               {{"after", "must not be negative"}});
  }
  ASSIGN_OR_RETURN(MessageRecord message,
                   storage_->Get(user_id, conversation_id, id));
  if (message.status == MessageStatus::kInProgress) {
    std::shared_ptr<Generation> generation;
    {
      std::lock_guard<std::mutex> lock(live_mutex_);
      auto it = live_.find(message.id);
      if (it != live_.end() && it->second->user_id() == user_id)
        generation = it->second;
    }
    // Generated here: followed live, from the text in memory.
    if (generation != nullptr && generation->AddFollower(sink, after)) {
      return absl::OkStatus();
    }
    if (generation != nullptr) {  // it ended meanwhile: read its end
      ASSIGN_OR_RETURN(message, storage_->Get(user_id, conversation_id, id));
    }
  }
  int64_t sent = after;
  if (Follow(message, sent, *sink)) {
    std::lock_guard<std::mutex> lock(followers_mutex_);
    followers_.push_back(
        {user_id, conversation_id, message.id, sent, std::move(sink)});
  }
  return absl::OkStatus();
}

void Chats::FollowReplies() {
  std::vector<RemoteFollower> followers;
  {
    std::lock_guard<std::mutex> lock(followers_mutex_);
    followers.swap(followers_);
  }
  std::vector<RemoteFollower> staying;
  for (RemoteFollower& f : followers) {
    if (f.sink->Cancelled()) continue;
    absl::StatusOr<MessageRecord> now =
        storage_->Get(f.user_id, f.conversation_id, f.id);
    if (!now.ok()) {
      f.sink->SendError(now.status());
      continue;
    }
    if (Follow(*now, f.sent, *f.sink)) staying.push_back(std::move(f));
  }
  std::lock_guard<std::mutex> lock(followers_mutex_);
  for (RemoteFollower& f : staying) followers_.push_back(std::move(f));
}

void Chats::SaveReplies() {
  std::vector<std::shared_ptr<Generation>> generations;
  {
    std::lock_guard<std::mutex> lock(live_mutex_);
    generations.reserve(live_.size());
    for (const auto& [id, generation] : live_)
      generations.push_back(generation);
  }
  if (generations.empty()) return;
  const absl::Time now = ToMicroseconds(clock_->Now());
  std::vector<ReplyText> batch;
  std::vector<int64_t> versions(generations.size());
  batch.reserve(generations.size());
  for (size_t i = 0; i < generations.size(); ++i) {
    batch.push_back(
        generations[i]->ToSave(now, options_.sign_of_life, versions[i]));
  }
  absl::StatusOr<absl::flat_hash_set<std::string>> ours =
      storage_->SaveReplyTexts(options_.owner, batch, now);
  if (!ours.ok()) {
    // Tried again at the next call.
    log::Warn("cannot store the text of replies",
              {{"error", ours.status().message()}});
    return;
  }
  for (size_t i = 0; i < generations.size(); ++i) {
    if (ours->contains(generations[i]->reply().id)) {
      generations[i]->Saved(batch[i], versions[i], now);
    } else {
      generations[i]->TakeAway();
    }
  }
}

absl::StatusOr<MessageRecord> Chats::CancelReply(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id) {
  RETURN_IF_ERROR(CheckResourceId("conversation", conversation_id));
  RETURN_IF_ERROR(CheckResourceId("message", id));
  ASSIGN_OR_RETURN(MessageRecord message,
                   storage_->Get(user_id, conversation_id, id));
  if (message.status != MessageStatus::kInProgress) return message;
  std::shared_ptr<Generation> generation;
  {
    std::lock_guard<std::mutex> lock(live_mutex_);
    auto it = live_.find(message.id);
    if (it != live_.end()) generation = it->second;
  }
  // Generated here: it stops at once and stores all of its text.
  if (generation != nullptr) {
    generation->Cancel();
    if (generation->WaitEnded(absl::Seconds(5))) {
      return storage_->Get(user_id, conversation_id, id);
    }
  }
  // Another replica's (or a slow stop): it stops at its next save.
  return storage_->CancelReply(user_id, conversation_id, id,
                               ToMicroseconds(clock_->Now()));
}

}  // namespace chat::message
