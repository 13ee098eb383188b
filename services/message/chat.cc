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

absl::Status Chats::CheckRequest(const std::string& conversation_id,
                                 const std::string* message_id,
                                 const std::string* content,
                                 const ParentChoice& parent_id,
                                 const std::string& model) {
  RETURN_IF_ERROR(CheckResourceId("conversation", conversation_id));
  if (message_id != nullptr) {
    RETURN_IF_ERROR(CheckResourceId("message", *message_id));
  }
  FieldViolations violations;
  if (content != nullptr) ValidateContent("content", *content, violations);
  ValidateParent("parent_id", parent_id, violations);
  if (model.size() > kMaxModelName) {
    violations.Add("model", "must be at most 128 bytes long");
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

absl::Status Chats::Run(const std::string& user_id,
                        const std::string& conversation_id,
                        const ChatInput& input, ChatSink& sink) {
  RETURN_IF_ERROR(CheckRequest(conversation_id, nullptr, &input.content,
                               input.parent_id, input.model));
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
                                    input.parent_id, std::nullopt));
  if (!sink.SendMessage(user_message)) return absl::OkStatus();
  Reply(user_id, conversation_id, &user_message, input.model, sink);
  return absl::OkStatus();
}

absl::Status Chats::Regenerate(const std::string& user_id,
                               const std::string& conversation_id,
                               const std::string& id, const std::string& model,
                               ChatSink& sink) {
  RETURN_IF_ERROR(
      CheckRequest(conversation_id, &id, nullptr, std::nullopt, model));
  std::optional<StreamLimiter::Lease> lease = limiter_.TryAcquire(user_id);
  if (!lease) {
    return ResourceExhaustedRetryAfter(
        "too many replies streaming for this user at once", absl::Seconds(1));
  }
  ASSIGN_OR_RETURN(MessageRecord original,
                   storage_->Get(user_id, conversation_id, id));
  if (original.role != Role::kAssistant) {
    return ErrorWithViolations(absl::StatusCode::kInvalidArgument,
                               "only an assistant message can be regenerated",
                               {{"id", "must name an assistant message"}});
  }
  std::optional<MessageRecord> prompt;
  if (!original.parent_id.empty()) {
    ASSIGN_OR_RETURN(prompt, storage_->Get(user_id, conversation_id,
                                           original.parent_id));
  }
  Reply(user_id, conversation_id, prompt ? &*prompt : nullptr, model, sink);
  return absl::OkStatus();
}

void Chats::Reply(const std::string& user_id,
                  const std::string& conversation_id, const MessageRecord* last,
                  const std::string& requested_model, ChatSink& sink) {
  absl::StatusOr<std::vector<ProviderMessage>> context =
      Context(user_id, conversation_id, last);
  if (!context.ok()) {
    sink.SendError(context.status());
    return;
  }
  const std::string model = requested_model.empty()
                                ? provider_->default_model()
                                : requested_model;
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
                       last != nullptr ? last->id : "", std::nullopt);
  if (!stored.ok()) {
    sink.SendError(stored.status());
    return;
  }
  if (!reply.ok()) {
    if (status == MessageStatus::kFailed) sink.SendError(reply.status());
    return;
  }
  absl::StatusOr<bool> named = storage_->NameUntitled(
      user_id, conversation_id, TitleFromMessage, done_at);
  if (!named.ok())
    log::Warn("cannot name the conversation",
              {{"error", named.status().message()}});
  sink.SendDone(*stored, reply->usage);
}

}  // namespace chat::message
