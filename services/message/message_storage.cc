#include "services/message/message_storage.h"

#include <limits>

#include "common/idempotency_storage.h"
#include "common/status_macros.h"

namespace chat::message {
namespace {

#define MESSAGE_COLUMNS                                                  \
  "id::text, conversation_id::text, seq, role, content, status, model, " \
  "metadata::text, (extract(epoch FROM created_at) * 1000000)::bigint, " \
  "(extract(epoch FROM updated_at) * 1000000)::bigint"

// One round trip: take the next position under the conversation's row lock,
// count the message, and insert it. Its created_at is never earlier than the
// previous message's, so times follow the listing order too.
constexpr char kAppend[] = "message_append";
constexpr char kAppendSql[] =
    "WITH c AS ("
    "  UPDATE conversations SET message_count = message_count + 1, "
    "    last_seq = last_seq + 1, "
    "    last_message_at = GREATEST(last_message_at, $8::timestamptz), "
    "    updated_at = GREATEST(updated_at, $8::timestamptz) "
    "  WHERE user_id = $1::uuid AND id = $2::uuid "
    "  RETURNING last_seq, last_message_at) "
    "INSERT INTO messages (user_id, conversation_id, seq, id, role, content, "
    "status, "
    "  model, metadata, created_at, updated_at) "
    "SELECT $1::uuid, $2::uuid, c.last_seq, $3::uuid, $4, $5, $6, $7, "
    "$9::jsonb, "
    "  c.last_message_at, c.last_message_at FROM c "
    "RETURNING " MESSAGE_COLUMNS;

constexpr char kGet[] = "message_get";
constexpr char kGetSql[] =
    "SELECT " MESSAGE_COLUMNS
    " FROM messages "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid AND id = $3::uuid";

// A page also ends once the content before a row reaches $5 bytes: the
// running sum reads only the stored sizes (octet_length does not detoast),
// and the limit stops the index scan, so a deep page costs a first page's.
constexpr char kListAscending[] = "message_list_asc";
constexpr char kListAscendingSql[] =
    "SELECT * FROM (SELECT " MESSAGE_COLUMNS
    ", sum(octet_length(content)) OVER (ORDER BY seq ASC) "
    "- octet_length(content) AS content_before FROM messages "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid AND seq > $3 "
    "ORDER BY seq ASC LIMIT $4) page "
    "WHERE content_before <= $5 ORDER BY seq ASC";

constexpr char kListDescending[] = "message_list_desc";
constexpr char kListDescendingSql[] =
    "SELECT * FROM (SELECT " MESSAGE_COLUMNS
    ", sum(octet_length(content)) OVER (ORDER BY seq DESC) "
    "- octet_length(content) AS content_before FROM messages "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid AND seq < $3 "
    "ORDER BY seq DESC LIMIT $4) page "
    "WHERE content_before <= $5 ORDER BY seq DESC";

constexpr char kConversationExists[] = "message_conversation_exists";
constexpr char kConversationExistsSql[] =
    "SELECT 1 FROM conversations WHERE user_id = $1::uuid AND id = $2::uuid";

constexpr char kLockConversation[] = "message_lock_conversation";
constexpr char kLockConversationSql[] =
    "SELECT 1 FROM conversations WHERE user_id = $1::uuid AND id = $2::uuid "
    "FOR NO KEY UPDATE";

constexpr char kUpdate[] = "message_update";
constexpr char kUpdateSql[] =
    "UPDATE messages SET content = COALESCE($4, content), "
    "metadata = COALESCE($5::jsonb, metadata), updated_at = $6::timestamptz "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid AND id = $3::uuid "
    "RETURNING " MESSAGE_COLUMNS;

constexpr char kTouchConversation[] = "message_touch_conversation";
constexpr char kTouchConversationSql[] =
    "UPDATE conversations SET updated_at = GREATEST(updated_at, "
    "$3::timestamptz) "
    "WHERE user_id = $1::uuid AND id = $2::uuid";

constexpr char kDelete[] = "message_delete";
constexpr char kDeleteSql[] =
    "DELETE FROM messages "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid AND id = $3::uuid";

// After a delete: the count drops by one and last_message_at is the newest
// remaining message's (by position, through the primary key).
constexpr char kUncount[] = "message_uncount";
constexpr char kUncountSql[] =
    "UPDATE conversations SET message_count = message_count - 1, "
    "updated_at = GREATEST(updated_at, $3::timestamptz), "
    "last_message_at = (SELECT m.created_at FROM messages m "
    "  WHERE m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "  ORDER BY m.seq DESC LIMIT 1) "
    "WHERE user_id = $1::uuid AND id = $2::uuid";

constexpr char kClear[] = "message_clear";
constexpr char kClearSql[] =
    "DELETE FROM messages WHERE user_id = $1::uuid AND conversation_id = "
    "$2::uuid";

constexpr char kUncountAll[] = "message_uncount_all";
constexpr char kUncountAllSql[] =
    "UPDATE conversations SET message_count = 0, last_message_at = NULL, "
    "updated_at = GREATEST(updated_at, $3::timestamptz) "
    "WHERE user_id = $1::uuid AND id = $2::uuid";

// The untitled conversation, locked, and the content of its first user
// message.
constexpr char kUntitledFirstMessage[] = "message_untitled_first_message";
constexpr char kUntitledFirstMessageSql[] =
    "SELECT (SELECT m.content FROM messages m WHERE m.user_id = c.user_id "
    "  AND m.conversation_id = c.id AND m.role = 'user' ORDER BY m.seq LIMIT "
    "1) "
    "FROM conversations c WHERE c.user_id = $1::uuid AND c.id = $2::uuid "
    "AND c.untitled FOR NO KEY UPDATE";

constexpr char kSetTitle[] = "message_set_title";
// deploy/migrations/0004_least_privilege.sql: the role may not update titles
// itself, only name a conversation that is still untitled.
constexpr char kSetTitleSql[] =
    "SELECT name_untitled_conversation($1::uuid, $2::uuid, $3, "
    "$4::timestamptz)";

// The newest usable messages before a position, while their characters add
// up to at most the budget (a running sum, so the result is a prefix).
constexpr char kContext[] = "message_context";
constexpr char kContextSql[] =
    "SELECT role, content FROM ("
    "  SELECT role, content, seq, "
    "    sum(length(content)) OVER (ORDER BY seq DESC) AS used FROM ("
    "    SELECT role, content, seq FROM messages "
    "    WHERE user_id = $1::uuid AND conversation_id = $2::uuid AND seq < $3 "
    "      AND status <> 'failed' AND content <> '' "
    "    ORDER BY seq DESC LIMIT $4) newest) counted "
    "WHERE used <= $5 ORDER BY seq DESC";

MessageRecord FromRow(const pqxx::row& row) {
  MessageRecord m;
  m.id = row[0].as<std::string>();
  m.conversation_id = row[1].as<std::string>();
  m.seq = row[2].as<int64_t>();
  // The table's CHECK constraints allow only the values the enums name.
  m.role = ParseRole(row[3].as<std::string>()).value_or(Role::kUser);
  m.content = row[4].as<std::string>();
  m.status =
      ParseStatus(row[5].as<std::string>()).value_or(MessageStatus::kComplete);
  m.model = row[6].as<std::string>();
  m.metadata = MetadataFromJson(row[7].as<std::string>()).value_or(Metadata{});
  m.created_at = FromPgMicros(row[8].as<int64_t>());
  m.updated_at = FromPgMicros(row[9].as<int64_t>());
  return m;
}

absl::Status ConversationNotFound() {
  return absl::NotFoundError("conversation not found");
}
absl::Status MessageNotFound() {
  return absl::NotFoundError("message not found");
}

// Locks the conversation row; NOT_FOUND when the user has no such one.
absl::Status LockConversation(pqxx::work& tx, const std::string& user_id,
                              const std::string& conversation_id) {
  if (tx.exec_prepared(kLockConversation, user_id, conversation_id).empty()) {
    return ConversationNotFound();
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<PreparedStatement> MessageStorage::Statements() {
  return WithStatements(
      {
          {kAppend, kAppendSql},
          {kGet, kGetSql},
          {kListAscending, kListAscendingSql},
          {kListDescending, kListDescendingSql},
          {kConversationExists, kConversationExistsSql},
          {kLockConversation, kLockConversationSql},
          {kUpdate, kUpdateSql},
          {kTouchConversation, kTouchConversationSql},
          {kDelete, kDeleteSql},
          {kUncount, kUncountSql},
          {kClear, kClearSql},
          {kUncountAll, kUncountAllSql},
          {kUntitledFirstMessage, kUntitledFirstMessageSql},
          {kSetTitle, kSetTitleSql},
          {kContext, kContextSql},
      },
      IdempotencyStatements());
}

absl::StatusOr<MessageRecord> MessageStorage::Append(
    const std::string& user_id, const MessageRecord& message,
    const std::optional<IdempotencyKey>& key) {
  return pool_->Transact<MessageRecord>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<MessageRecord> {
        if (key) {
          ASSIGN_OR_RETURN(IdempotencyClaim claim,
                           ClaimIdempotencyKey(tx, user_id, *key, message.id,
                                               message.created_at));
          if (claim.replay) {
            pqxx::result rows = tx.exec_prepared(
                kGet, user_id, message.conversation_id, claim.resource_id);
            if (rows.empty()) return MessageNotFound();
            return FromRow(rows[0]);
          }
        }
        pqxx::result rows = tx.exec_prepared(
            kAppend, user_id, message.conversation_id, message.id,
            std::string(RoleName(message.role)), message.content,
            std::string(StatusName(message.status)), message.model,
            PgTime(message.created_at), MetadataToJson(message.metadata));
        if (rows.empty()) return ConversationNotFound();
        return FromRow(rows[0]);
      });
}

absl::StatusOr<MessageRecord> MessageStorage::Get(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id) {
  return pool_->Transact<MessageRecord>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<MessageRecord> {
        pqxx::result rows =
            tx.exec_prepared(kGet, user_id, conversation_id, id);
        if (rows.empty()) return MessageNotFound();
        return FromRow(rows[0]);
      });
}

absl::StatusOr<std::vector<MessageRecord>> MessageStorage::List(
    const std::string& user_id, const std::string& conversation_id,
    bool descending, std::optional<int64_t> after, int limit,
    int64_t content_budget) {
  const int64_t from =
      after.value_or(descending ? std::numeric_limits<int64_t>::max() : 0);
  return pool_->Transact<std::vector<MessageRecord>>(
      user_id,
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<MessageRecord>> {
        pqxx::result rows = tx.exec_prepared(
            descending ? kListDescending : kListAscending, user_id,
            conversation_id, from, limit, content_budget);
        // An empty page costs one more look: is there a conversation at all?
        if (rows.empty() &&
            tx.exec_prepared(kConversationExists, user_id, conversation_id)
                .empty()) {
          return ConversationNotFound();
        }
        std::vector<MessageRecord> page;
        page.reserve(rows.size());
        for (const pqxx::row& row : rows) page.push_back(FromRow(row));
        return page;
      });
}

absl::StatusOr<MessageRecord> MessageStorage::Update(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id, const MessageChange& change, absl::Time now) {
  std::optional<std::string> metadata;
  if (change.metadata) metadata = MetadataToJson(*change.metadata);
  return pool_->Transact<MessageRecord>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<MessageRecord> {
        RETURN_IF_ERROR(LockConversation(tx, user_id, conversation_id));
        pqxx::result rows =
            tx.exec_prepared(kUpdate, user_id, conversation_id, id,
                             change.content, metadata, PgTime(now));
        if (rows.empty()) return MessageNotFound();
        tx.exec_prepared0(kTouchConversation, user_id, conversation_id,
                          PgTime(now));
        return FromRow(rows[0]);
      });
}

absl::Status MessageStorage::Delete(const std::string& user_id,
                                    const std::string& conversation_id,
                                    const std::string& id, absl::Time now) {
  return pool_->Transact(user_id, [&](pqxx::work& tx) -> absl::Status {
    RETURN_IF_ERROR(LockConversation(tx, user_id, conversation_id));
    if (tx.exec_prepared(kDelete, user_id, conversation_id, id)
            .affected_rows() == 0) {
      return MessageNotFound();
    }
    tx.exec_prepared0(kUncount, user_id, conversation_id, PgTime(now));
    return absl::OkStatus();
  });
}

absl::Status MessageStorage::Clear(const std::string& user_id,
                                   const std::string& conversation_id,
                                   absl::Time now) {
  return pool_->Transact(user_id, [&](pqxx::work& tx) -> absl::Status {
    RETURN_IF_ERROR(LockConversation(tx, user_id, conversation_id));
    tx.exec_prepared0(kClear, user_id, conversation_id);
    tx.exec_prepared0(kUncountAll, user_id, conversation_id, PgTime(now));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<ContextMessage>> MessageStorage::ContextBefore(
    const std::string& user_id, const std::string& conversation_id,
    int64_t before, int max_messages, int64_t budget_chars) {
  return pool_->Transact<std::vector<ContextMessage>>(
      user_id,
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<ContextMessage>> {
        std::vector<ContextMessage> context;
        for (const pqxx::row& row :
             tx.exec_prepared(kContext, user_id, conversation_id, before,
                              max_messages, budget_chars)) {
          context.push_back(
              {ParseRole(row[0].as<std::string>()).value_or(Role::kUser),
               row[1].as<std::string>()});
        }
        return context;
      });
}

absl::StatusOr<bool> MessageStorage::NameUntitled(
    const std::string& user_id, const std::string& conversation_id,
    const std::function<std::string(const std::string&)>&
        title_of_first_message,
    absl::Time now) {
  return pool_->Transact<bool>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<bool> {
        pqxx::result rows =
            tx.exec_prepared(kUntitledFirstMessage, user_id, conversation_id);
        if (rows.empty() || rows[0][0].is_null()) return false;
        const std::string title =
            title_of_first_message(rows[0][0].as<std::string>());
        if (title.empty()) return false;
        return tx
            .exec_prepared1(kSetTitle, user_id, conversation_id, title,
                            PgTime(now))[0]
            .as<bool>();
      });
}

}  // namespace chat::message
