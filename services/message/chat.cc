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

Chats::Chats(MessageStore* storage, Provider* provider, const Clock* clock,
             ChatOptions options)
    : storage_(storage),
      provider_(provider),
      clock_(clock),
      options_(std::move(options)) {
  if (!options_.sleep) {
    options_.sleep = [](absl::Duration d) { absl::SleepFor(d); };
  }
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

absl::StatusOr<std::vector<ProviderMessage>> Chats::Context(
    const std::string& user_id, const std::string& conversation_id,
    const MessageRecord* last) {
  std::vector<ProviderMessage> context;
  if (last != nullptr) {
    const int64_t budget =
        static_cast<int64_t>(options_.context_budget_chars) -
        static_cast<int64_t>(CountCodePoints(last->content).value_or(0));
    if (budget > 0) {
      ASSIGN_OR_RETURN(
          std::vector<ContextMessage> earlier,
          storage_->ContextPath(user_id, conversation_id, last->parent_id,
                                options_.context_max_messages, budget));
      for (ContextMessage& m : earlier) {  // newest first
        context.push_back({m.role, std::move(m.content)});
      }
    }
  }
  if (!options_.system_prompt.empty())
    context.push_back({Role::kSystem, options_.system_prompt});
  std::reverse(context.begin(), context.end());
  if (last != nullptr) context.push_back({last->role, last->content});
  return context;
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
                        const ChatInput& input, ChatSink& sink) {
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
                           options_.owner, options_.max_streams_per_user));
  if (sink.SendMessage(*started.prompt)) sink.SendReply(started.reply);
  Generate(user_id, &*started.prompt, started.reply, sink);
  return absl::OkStatus();
}

absl::Status Chats::Regenerate(const std::string& user_id,
                               const std::string& conversation_id,
                               const std::string& id, const std::string& model,
                               ChatSink& sink) {
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
                           options_.owner, options_.max_streams_per_user));
  sink.SendReply(started.reply);
  Generate(user_id, prompt ? &*prompt : nullptr, started.reply, sink);
  return absl::OkStatus();
}

void Chats::Generate(const std::string& user_id, const MessageRecord* last,
                     const MessageRecord& reply, ChatSink& sink) {
  auto live = std::make_shared<Live>();
  {
    std::lock_guard<std::mutex> lock(live_mutex_);
    live_[reply.id] = live;
  }
  const std::string& conversation_id = reply.conversation_id;
  std::string text;
  int64_t offset = 0;       // characters sent or stored so far
  bool client_here = true;  // writes to the client still go through
  bool taken_away = false;  // cancelled or recovered elsewhere
  bool changed = false;     // text not stored yet
  absl::Time last_save = clock_->Now();
  // Stores the text (and learns whether the reply is still ours) at least
  // every save_interval while the reply runs.
  auto save_if_due = [&] {
    const absl::Time now = clock_->Now();
    if (taken_away || now - last_save < options_.save_interval) return;
    last_save = now;
    absl::StatusOr<bool> still_ours =
        storage_->SaveReplyText(user_id, conversation_id, reply.id,
                                options_.owner, text, ToMicroseconds(now));
    if (!still_ours.ok()) {
      log::Warn("cannot store a reply's text",
                {{"error", still_ours.status().message()}});
      return;  // tried again at the next interval
    }
    changed = false;
    taken_away = !*still_ours;
  };
  auto stop_requested = [&] {
    return live->cancel.load() || stopping_.load() || taken_away;
  };

  absl::StatusOr<std::vector<ProviderMessage>> context =
      Context(user_id, conversation_id, last);
  absl::StatusOr<ProviderReply> answer =
      context.ok() ? absl::StatusOr<ProviderReply>(
                         absl::UnknownError("the provider was not asked"))
                   : absl::StatusOr<ProviderReply>(context.status());
  if (context.ok()) {
    answer = provider_->Complete(
        reply.model, *context,
        [&](absl::string_view piece) {
          text.append(piece.data(), piece.size());
          if (client_here && !sink.SendDelta(piece, offset)) {
            client_here = false;  // the reply goes on without the client
          }
          offset += static_cast<int64_t>(
              CountCodePoints(piece).value_or(piece.size()));
          changed = true;
          save_if_due();
          return !stop_requested();
        },
        [&] {
          if (client_here && sink.Cancelled()) client_here = false;
          save_if_due();
          return stop_requested();
        });
  }

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
      user_id, conversation_id, reply.id, options_.owner, text, status,
      answer.ok() ? answer->model : reply.model, done_at);
  {
    std::lock_guard<std::mutex> lock(live->mutex);
    live->ended = true;
  }
  live->ended_cv.notify_all();
  {
    std::lock_guard<std::mutex> lock(live_mutex_);
    live_.erase(reply.id);
  }
  absl::StatusOr<MessageRecord> stored =
      !finished.ok() ? absl::StatusOr<MessageRecord>(finished.status())
      : finished->has_value()
          ? absl::StatusOr<MessageRecord>(**finished)
          // Cancelled or recovered elsewhere: it is as that left it.
          : storage_->Get(user_id, conversation_id, reply.id);
  if (!stored.ok()) {
    sink.SendError(stored.status());
    return;
  }
  if (status == MessageStatus::kFailed) {
    sink.SendError(answer.status());
    return;
  }
  if (status == MessageStatus::kComplete && finished->has_value()) {
    absl::StatusOr<bool> named = storage_->NameUntitled(
        user_id, conversation_id, TitleFromMessage, done_at);
    if (!named.ok())
      log::Warn("cannot name the conversation",
                {{"error", named.status().message()}});
  }
  sink.SendDone(*stored, answer.ok() ? answer->usage : ProviderUsage{});
}

absl::Status Chats::StreamReply(const std::string& user_id,
                                const std::string& conversation_id,
                                const std::string& id, int64_t after,
                                ChatSink& sink) {
  RETURN_IF_ERROR(CheckResourceId("conversation", conversation_id));
  RETURN_IF_ERROR(CheckResourceId("message", id));
  if (after < 0) {
    return ErrorWithViolations(absl::StatusCode::kInvalidArgument,
                               "validation failed",
                               {{"after", "must not be negative"}});
  }
  ASSIGN_OR_RETURN(MessageRecord message,
                   storage_->Get(user_id, conversation_id, id));
  int64_t sent = after;  // characters the client has
  for (;;) {
    const absl::string_view text = message.content;
    const size_t from = ByteOffsetOfCodePoint(text, sent);
    if (from < text.size()) {
      const absl::string_view rest = text.substr(from);
      if (!sink.SendDelta(rest, sent)) return absl::OkStatus();
      sent += static_cast<int64_t>(CountCodePoints(rest).value_or(0));
    }
    if (message.status == MessageStatus::kFailed) {
      sink.SendError(absl::UnavailableError("the reply failed"));
      return absl::OkStatus();
    }
    if (message.status != MessageStatus::kInProgress) {
      sink.SendDone(message, {});
      return absl::OkStatus();
    }
    if (sink.Cancelled()) return absl::OkStatus();
    options_.sleep(options_.poll_interval);
    absl::StatusOr<MessageRecord> now =
        storage_->Get(user_id, conversation_id, id);
    if (!now.ok()) {
      sink.SendError(now.status());
      return absl::OkStatus();
    }
    message = *std::move(now);
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
  std::shared_ptr<Live> live;
  {
    std::lock_guard<std::mutex> lock(live_mutex_);
    auto it = live_.find(message.id);
    if (it != live_.end()) live = it->second;
  }
  if (live != nullptr) {
    // Generated here: it stops at once and stores all of its text.
    live->cancel = true;
    std::unique_lock<std::mutex> lock(live->mutex);
    if (live->ended_cv.wait_for(lock, std::chrono::seconds(5),
                                [&] { return live->ended; })) {
      lock.unlock();
      return storage_->Get(user_id, conversation_id, id);
    }
  }
  // Another replica's (or a slow stop): it stops at its next look.
  return storage_->CancelReply(user_id, conversation_id, id,
                               ToMicroseconds(clock_->Now()));
}

}  // namespace chat::message
