#include "services/conversation/conversations.h"

#include <future>

#include "chat/internal/page_token.pb.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "common/text_field.h"

namespace chat::conversation {
namespace {

constexpr int kDefaultPageSize = 20;
constexpr int kMaxPageSize = 100;
constexpr size_t kMaxTitle = 255;
// 9999-12-31T23:59:59.999999Z, the last time a page token may hold.
constexpr int64_t kLatestCursorMicros = 253402300799999999;

void ValidateTitle(const std::string& title, FieldViolations& violations) {
  ValidateText("title", title, kMaxTitle, violations);
}

// A message named in a request body: a malformed id is a bad request,
// unlike a path id (which answers like a missing resource).
void ValidateActiveMessageId(const std::string& id,
                             FieldViolations& violations) {
  if (id.empty()) {
    violations.Add("active_message_id", "must name a message");
  } else if (!IsUuid(id)) {
    violations.Add("active_message_id", "must be a UUID");
  }
}

// Malformed ids cannot exist, and answer like missing ones.
}  // namespace

std::string DefaultTitle(absl::Time created_at) {
  return "New Chat - " + absl::FormatTime("%Y-%m-%d%ET%H:%M:%E3SZ", created_at,
                                          absl::UTCTimeZone());
}

absl::StatusOr<ConversationRecord> Conversations::Create(
    const std::string& user_id, const NewConversation& request,
    const std::string& idempotency_key) {
  FieldViolations violations;
  if (!request.title.empty()) ValidateTitle(request.title, violations);
  ValidateMetadata("metadata", request.metadata, violations);
  ValidateIdempotencyKey(idempotency_key, violations);
  RETURN_IF_ERROR(violations.ToStatus());

  ASSIGN_OR_RETURN(
      std::optional<IdempotencyKey> key,
      IdempotencyKeyFor(idempotency_key, "CreateConversation",
                        {request.title, MetadataToJson(request.metadata)}));
  const absl::Time now = ToMicroseconds(clock_->Now());
  ConversationRecord conversation{
      .id = NewUuidV7(now),
      .title = request.title.empty() ? DefaultTitle(now) : request.title,
      .untitled = request.title.empty(),
      .metadata = request.metadata,
      .created_at = now,
      .updated_at = now,
  };
  return storage_->Create(user_id, conversation, key);
}

namespace {

// What a listing reads, once its request is checked.
struct PageRead {
  std::optional<ListPosition> after;  // nullopt: the first page
  int page_size;
};

absl::StatusOr<PageRead> ReadOfQuery(const ListQuery& query) {
  // libpq would cut the text at a NUL: "Paris\0x" would search for "Paris".
  if (query.q.find('\0') != std::string::npos) {
    FieldViolations violations;
    violations.Add("q", "must not contain NUL");
    return violations.ToStatus();
  }
  ASSIGN_OR_RETURN(
      int page_size,
      ResolvePageSize(query.page_size, kDefaultPageSize, kMaxPageSize));
  if (query.page_token.empty()) return PageRead{std::nullopt, page_size};
  chat::internal::ConversationCursor cursor;
  RETURN_IF_ERROR(DecodePageToken(query.page_token, &cursor));
  // A time PostgreSQL could not take is a tampered token, not a 500.
  if (cursor.archived() != query.archived || cursor.query() != query.q ||
      !IsUuid(cursor.id()) || cursor.updated_at_micros() < 0 ||
      cursor.updated_at_micros() > kLatestCursorMicros) {
    return ForeignPageToken();
  }
  return PageRead{
      ListPosition{cursor.pinned(), cursor.updated_at_micros(), cursor.id()},
      page_size};
}

// The page of the rows read (one more than the page, when there are).
ConversationPage PageOfRows(const ListQuery& query, int page_size,
                            std::vector<ConversationRecord> rows) {
  ConversationPage page;
  if (static_cast<int>(rows.size()) > page_size) {
    rows.resize(page_size);
    const ConversationRecord& last = rows.back();
    chat::internal::ConversationCursor cursor;
    cursor.set_archived(query.archived);
    cursor.set_query(query.q);
    cursor.set_pinned(last.pinned);
    cursor.set_updated_at_micros(absl::ToUnixMicros(last.updated_at));
    cursor.set_id(last.id);
    page.next_page_token = EncodePageToken(cursor);
  }
  page.conversations = std::move(rows);
  return page;
}

}  // namespace

void Conversations::ListAsync(const std::string& user_id,
                              const ListQuery& query, PageDone done) {
  absl::StatusOr<PageRead> read = ReadOfQuery(query);
  if (!read.ok()) {
    std::move(done)(read.status());
    return;
  }
  // One extra row tells whether another page follows.
  storage_->ListAsync(
      user_id, query.archived, query.q, read->after, read->page_size + 1,
      [query, page_size = read->page_size, done = std::move(done)](
          absl::StatusOr<std::vector<ConversationRecord>> rows) mutable {
        if (!rows.ok()) {
          std::move(done)(rows.status());
          return;
        }
        std::move(done)(PageOfRows(query, page_size, *std::move(rows)));
      });
}

absl::StatusOr<ConversationPage> Conversations::List(const std::string& user_id,
                                                     const ListQuery& query) {
  std::promise<absl::StatusOr<ConversationPage>> answer;
  std::future<absl::StatusOr<ConversationPage>> page = answer.get_future();
  ListAsync(user_id, query, [&answer](absl::StatusOr<ConversationPage> listed) {
    answer.set_value(std::move(listed));
  });
  return page.get();
}

absl::StatusOr<ConversationRecord> Conversations::Get(
    const std::string& user_id, const std::string& id) {
  RETURN_IF_ERROR(CheckResourceId("conversation", id));
  return storage_->Get(user_id, id);
}

absl::StatusOr<ConversationRecord> Conversations::Update(
    const std::string& user_id, const std::string& id,
    const ConversationChange& change) {
  RETURN_IF_ERROR(CheckResourceId("conversation", id));
  FieldViolations violations;
  if (change.title) ValidateTitle(*change.title, violations);
  if (change.metadata)
    ValidateMetadata("metadata", *change.metadata, violations);
  if (change.active_message_id)
    ValidateActiveMessageId(*change.active_message_id, violations);
  RETURN_IF_ERROR(violations.ToStatus());
  if (!change.title && !change.metadata && !change.archived && !change.pinned &&
      !change.active_message_id) {
    return storage_->Get(user_id, id);  // nothing to change, no activity
  }
  return storage_->Update(user_id, id, change, ToMicroseconds(clock_->Now()));
}

absl::Status Conversations::Delete(const std::string& user_id,
                                   const std::string& id) {
  RETURN_IF_ERROR(CheckResourceId("conversation", id));
  return storage_->Delete(user_id, id);
}

absl::Status Conversations::DeleteAll(const std::string& user_id) {
  return storage_->DeleteAll(user_id);
}

}  // namespace chat::conversation
