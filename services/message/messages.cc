#include "services/message/messages.h"

#include <future>

#include "chat/internal/page_token.pb.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "common/text_field.h"

namespace chat::message {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 200;
// docs/api.md "Messages": a page ends early once it holds 4 MiB of content.
constexpr int64_t kMaxPageContentBytes = 4 << 20;
constexpr size_t kMaxContent = 100000;
constexpr size_t kMaxTitle = 255;

// The conversation's id, then the message's when there is one.
absl::Status CheckIds(const std::string& conversation_id,
                      const std::string* id) {
  RETURN_IF_ERROR(CheckResourceId("conversation", conversation_id));
  return id == nullptr ? absl::OkStatus() : CheckResourceId("message", *id);
}

}  // namespace

void ValidateContent(absl::string_view field, const std::string& content,
                     FieldViolations& violations) {
  ValidateText(field, content, kMaxContent, violations);
}

void ValidateParent(absl::string_view field, const ParentChoice& parent,
                    FieldViolations& violations) {
  if (parent && !parent->empty() && !IsUuid(*parent)) {
    violations.Add(field, "must be a message id, or empty for a new root");
  }
}

absl::StatusOr<MessageRecord> Messages::Create(
    const std::string& user_id, const std::string& conversation_id,
    const NewMessage& request, const std::string& idempotency_key) {
  RETURN_IF_ERROR(CheckIds(conversation_id, nullptr));
  FieldViolations violations;
  if (!request.role)
    violations.Add("role", "must be user, assistant or system");
  ValidateContent("content", request.content, violations);
  ValidateMetadata("metadata", request.metadata, violations);
  ValidateParent("parent_id", request.parent_id, violations);
  ValidateIdempotencyKey(idempotency_key, violations);
  RETURN_IF_ERROR(violations.ToStatus());

  // "-" cannot be an id: it tells "no parent given" from "a new root".
  ASSIGN_OR_RETURN(
      std::optional<IdempotencyKey> key,
      IdempotencyKeyFor(idempotency_key, "CreateMessage",
                        {conversation_id, std::string(RoleName(*request.role)),
                         request.content, MetadataToJson(request.metadata),
                         request.parent_id.value_or("-")}));
  const absl::Time now = ToMicroseconds(clock_->Now());
  return storage_->Append(user_id,
                          MessageRecord{.id = NewUuidV7(now),
                                        .conversation_id = conversation_id,
                                        .role = *request.role,
                                        .content = request.content,
                                        .status = MessageStatus::kComplete,
                                        .metadata = request.metadata,
                                        .created_at = now,
                                        .updated_at = now},
                          request.parent_id, key);
}

namespace {

// What a listing reads, once its request is checked.
struct PageRead {
  Branch branch;
  bool descending;
  std::optional<int64_t> after;
  int page_size;
};

absl::StatusOr<PageRead> ReadOfQuery(const std::string& conversation_id,
                                     const ListQuery& query) {
  FieldViolations violations;
  if (!query.order) violations.Add("order", "must be asc or desc");
  if (!query.branch) violations.Add("branch", "must be active or all");
  absl::StatusOr<int> page_size =
      ResolvePageSize(query.page_size, kDefaultPageSize, kMaxPageSize);
  if (!page_size.ok()) violations.Add("page_size", "must not be negative");
  RETURN_IF_ERROR(violations.ToStatus());
  PageRead read{*query.branch, *query.order == Order::kDescending, std::nullopt,
                *page_size};
  if (!query.page_token.empty()) {
    chat::internal::MessageCursor cursor;
    RETURN_IF_ERROR(DecodePageToken(query.page_token, &cursor));
    if (cursor.conversation_id() != conversation_id ||
        cursor.descending() != read.descending ||
        cursor.all_branches() != (read.branch == Branch::kAll)) {
      return ForeignPageToken();
    }
    read.after = cursor.seq();
  }
  return read;
}

// The page of the rows read (one more than the page, when there are): up to
// page_size messages while their content fits the budget (the first always
// does: one message is far smaller).
MessagePage PageOfRows(const std::string& conversation_id, const PageRead& read,
                       std::vector<MessageRecord> rows) {
  size_t kept = 0;
  int64_t content_bytes = 0;
  while (kept < rows.size() && static_cast<int>(kept) < read.page_size) {
    const int64_t size = static_cast<int64_t>(rows[kept].content.size());
    if (kept > 0 && content_bytes + size > kMaxPageContentBytes) break;
    content_bytes += size;
    ++kept;
  }
  MessagePage page;
  if (kept < rows.size()) {
    rows.resize(kept);
    chat::internal::MessageCursor cursor;
    cursor.set_conversation_id(conversation_id);
    cursor.set_descending(read.descending);
    cursor.set_all_branches(read.branch == Branch::kAll);
    cursor.set_seq(rows.back().seq);
    page.next_page_token = EncodePageToken(cursor);
  }
  page.messages = std::move(rows);
  return page;
}

}  // namespace

absl::StatusOr<MessagePage> Messages::List(const std::string& user_id,
                                           const std::string& conversation_id,
                                           const ListQuery& query) {
  std::promise<absl::StatusOr<MessagePage>> answer;
  std::future<absl::StatusOr<MessagePage>> page = answer.get_future();
  ListAsync(user_id, conversation_id, query,
            [&answer](absl::StatusOr<MessagePage> listed) {
              answer.set_value(std::move(listed));
            });
  return page.get();
}

void Messages::ListAsync(const std::string& user_id,
                         const std::string& conversation_id,
                         const ListQuery& query, PageDone done) {
  absl::Status checked = CheckIds(conversation_id, nullptr);
  absl::StatusOr<PageRead> read = checked.ok()
                                      ? ReadOfQuery(conversation_id, query)
                                      : absl::StatusOr<PageRead>(checked);
  if (!read.ok()) {
    std::move(done)(read.status());
    return;
  }
  // One extra row tells whether another page follows.
  storage_->ListAsync(
      user_id, conversation_id, read->branch, read->descending, read->after,
      read->page_size + 1, kMaxPageContentBytes,
      [conversation_id, read = *read, done = std::move(done)](
          absl::StatusOr<std::vector<MessageRecord>> rows) mutable {
        if (!rows.ok()) {
          std::move(done)(rows.status());
          return;
        }
        std::move(done)(PageOfRows(conversation_id, read, *std::move(rows)));
      });
}

absl::StatusOr<MessageRecord> Messages::Get(const std::string& user_id,
                                            const std::string& conversation_id,
                                            const std::string& id) {
  RETURN_IF_ERROR(CheckIds(conversation_id, &id));
  return storage_->Get(user_id, conversation_id, id);
}

absl::StatusOr<MessageRecord> Messages::Update(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id, const MessageChange& change) {
  RETURN_IF_ERROR(CheckIds(conversation_id, &id));
  FieldViolations violations;
  if (change.content) ValidateContent("content", *change.content, violations);
  if (change.metadata)
    ValidateMetadata("metadata", *change.metadata, violations);
  RETURN_IF_ERROR(violations.ToStatus());
  if (!change.content && !change.metadata) {
    return storage_->Get(user_id, conversation_id, id);  // nothing to change
  }
  return storage_->Update(user_id, conversation_id, id, change,
                          ToMicroseconds(clock_->Now()));
}

absl::Status Messages::Delete(const std::string& user_id,
                              const std::string& conversation_id,
                              const std::string& id) {
  RETURN_IF_ERROR(CheckIds(conversation_id, &id));
  return storage_->Delete(user_id, conversation_id, id,
                          ToMicroseconds(clock_->Now()));
}

absl::Status Messages::Clear(const std::string& user_id,
                             const std::string& conversation_id) {
  RETURN_IF_ERROR(CheckIds(conversation_id, nullptr));
  return storage_->Clear(user_id, conversation_id,
                         ToMicroseconds(clock_->Now()));
}

absl::StatusOr<ForkedConversation> Messages::Fork(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& message_id, const std::optional<std::string>& title) {
  RETURN_IF_ERROR(CheckIds(conversation_id, &message_id));
  FieldViolations violations;
  if (title) ValidateText("title", *title, kMaxTitle, violations);
  RETURN_IF_ERROR(violations.ToStatus());
  const absl::Time now = ToMicroseconds(clock_->Now());
  return storage_->Fork(user_id, conversation_id, message_id,
                        {.id = NewUuidV7(now),
                         .title = title.value_or(""),
                         .created_at = now,
                         .updated_at = now},
                        [now] { return NewUuidV7(now); });
}

}  // namespace chat::message
