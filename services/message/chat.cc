#include "services/message/chat.h"

#include <algorithm>

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

absl::StatusOr<std::vector<ProviderMessage>> Chats::Context(
    const std::string& user_id, const MessageRecord& user_message) {
  const int64_t budget =
      static_cast<int64_t>(options_.context_budget_chars) -
      static_cast<int64_t>(CountCodePoints(user_message.content).value_or(0));
  std::vector<ProviderMessage> context;
  if (budget > 0) {
    ASSIGN_OR_RETURN(
        std::vector<ContextMessage> earlier,
        storage_->ContextBefore(user_id, user_message.conversation_id,
                                user_message.seq, options_.context_max_messages,
                                budget));
    for (ContextMessage& m : earlier) {  // newest first
      context.push_back({m.role, std::move(m.content)});
    }
  }
  if (!options_.system_prompt.empty())
    context.push_back({Role::kSystem, options_.system_prompt});
  std::reverse(context.begin(), context.end());
  context.push_back({Role::kUser, user_message.content});
  return context;
}

absl::Status Chats::Run(const std::string& user_id,
                        const std::string& conversation_id,
                        const ChatInput& input, ChatSink& sink) {
  RETURN_IF_ERROR(CheckResourceId("conversation", conversation_id));
  FieldViolations violations;
  ValidateContent("content", input.content, violations);
  if (input.model.size() > kMaxModelName) {
    violations.Add("model", "must be at most 128 bytes long");
  }
  RETURN_IF_ERROR(violations.ToStatus());
  std::optional<StreamLimiter::Lease> lease = limiter_.TryAcquire(user_id);
  if (!lease) {
    return ResourceExhaustedRetryAfter(
        "too many replies streaming for this user at once", absl::Seconds(1));
  }

  const absl::Time now = ToMicroseconds(clock_->Now());
  ASSIGN_OR_RETURN(MessageRecord user_message,
                   storage_->Append(user_id,
                                    {.id = NewUuidV7(now),
                                     .conversation_id = conversation_id,
                                     .role = Role::kUser,
                                     .content = input.content,
                                     .status = MessageStatus::kComplete,
                                     .created_at = now,
                                     .updated_at = now},
                                    std::nullopt));
  if (!sink.SendMessage(user_message)) return absl::OkStatus();

  absl::StatusOr<std::vector<ProviderMessage>> context =
      Context(user_id, user_message);
  if (!context.ok()) {
    sink.SendError(context.status());
    return absl::OkStatus();
  }
  const std::string model =
      input.model.empty() ? provider_->default_model() : input.model;
  std::string text;
  absl::StatusOr<ProviderReply> reply = provider_->Complete(
      model, *context,
      [&](absl::string_view piece) {
        text.append(piece.data(), piece.size());
        return sink.SendDelta(piece);
      },
      [&] { return sink.Cancelled(); });

  MessageStatus status = MessageStatus::kComplete;
  if (!reply.ok()) {
    status = reply.status().code() == absl::StatusCode::kCancelled
                 ? MessageStatus::kIncomplete
                 : MessageStatus::kFailed;
    log::Warn("reply not complete",
              {{"status", std::string(StatusName(status))},
               {"error", reply.status().message()}});
  }
  const absl::Time done_at = ToMicroseconds(clock_->Now());
  absl::StatusOr<MessageRecord> stored =
      storage_->Append(user_id,
                       {.id = NewUuidV7(done_at),
                        .conversation_id = conversation_id,
                        .role = Role::kAssistant,
                        .content = text,
                        .status = status,
                        .model = reply.ok() ? reply->model : model,
                        .created_at = done_at,
                        .updated_at = done_at},
                       std::nullopt);
  if (!stored.ok()) {
    sink.SendError(stored.status());
    return absl::OkStatus();
  }
  if (!reply.ok()) {
    if (status == MessageStatus::kFailed) sink.SendError(reply.status());
    return absl::OkStatus();
  }
  absl::StatusOr<bool> named = storage_->NameUntitled(
      user_id, conversation_id, TitleFromMessage, done_at);
  if (!named.ok())
    log::Warn("cannot name the conversation",
              {{"error", named.status().message()}});
  sink.SendDone(*stored, reply->usage);
  return absl::OkStatus();
}

}  // namespace chat::message
