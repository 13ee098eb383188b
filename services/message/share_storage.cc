#include "services/message/share_storage.h"

#include "common/status_macros.h"

namespace chat::message {
namespace {

constexpr char kLockConversation[] = "share_lock_conversation";
constexpr char kLockConversationSql[] =
    "SELECT title FROM conversations WHERE user_id = $1::uuid "
    "AND id = $2::uuid FOR NO KEY UPDATE";

constexpr char kConversationExists[] = "share_conversation_exists";
constexpr char kConversationExistsSql[] =
    "SELECT 1 FROM conversations WHERE user_id = $1::uuid AND id = $2::uuid";

constexpr char kCountShares[] = "share_count";
constexpr char kCountSharesSql[] =
    "SELECT count(*) FROM shares WHERE user_id = $1::uuid "
    "AND conversation_id = $2::uuid";

// The messages a snapshot copies: the active branch, without replies still
// in progress (their text is not final) and without empty messages.
#define SNAPSHOT_MESSAGES                          \
  " FROM messages m WHERE m.user_id = $1::uuid "   \
  "AND m.conversation_id = $2::uuid AND m.active " \
  "AND m.status <> 'in_progress' AND m.content <> ''"

// How many messages and bytes of content a snapshot would copy
// (octet_length reads the stored size without detoasting).
constexpr char kMeasure[] = "share_measure";
constexpr char kMeasureSql[] =
    "SELECT count(*), COALESCE(sum(octet_length(m.content)), "
    "0)::bigint" SNAPSHOT_MESSAGES;

constexpr char kInsertShare[] = "share_insert";
constexpr char kInsertShareSql[] =
    "INSERT INTO shares (user_id, id, conversation_id, token_hash, title, "
    "message_count, created_at) VALUES ($1::uuid, $3::uuid, $2::uuid, "
    "decode($4, 'hex'), $5, $6, $7::timestamptz)";

// Along the active branch, position order (seq) is depth order.
constexpr char kCopyMessages[] = "share_copy_messages";
constexpr char kCopyMessagesSql[] =
    "INSERT INTO share_messages (user_id, share_id, position, role, content, "
    "model, created_at) SELECT $1::uuid, $3::uuid, "
    "row_number() OVER (ORDER BY m.seq), m.role, m.content, m.model, "
    "m.created_at" SNAPSHOT_MESSAGES;

constexpr char kListShares[] = "share_list";
constexpr char kListSharesSql[] =
    "SELECT id::text, conversation_id::text, message_count, "
    "(extract(epoch FROM created_at) * 1000000)::bigint FROM shares "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid "
    "ORDER BY created_at DESC, id DESC";

constexpr char kDeleteShare[] = "share_delete";
constexpr char kDeleteShareSql[] =
    "DELETE FROM shares WHERE user_id = $1::uuid "
    "AND conversation_id = $2::uuid AND id = $3::uuid";

// deploy/migrations/0013_shares.sql: the snapshot by its token's hash, with
// no app.user_id set.
constexpr char kShared[] = "share_shared";
constexpr char kSharedSql[] =
    "SELECT title, (extract(epoch FROM shared_at) * 1000000)::bigint, role, "
    "content, model, (extract(epoch FROM created_at) * 1000000)::bigint "
    "FROM shared_conversation(decode($1, 'hex'))";

absl::Status ConversationNotFound() {
  return absl::NotFoundError("conversation not found");
}

absl::Status ShareNotFound() { return absl::NotFoundError("share not found"); }

}  // namespace

std::vector<PreparedStatement> ShareStorage::Statements() {
  return {
      {kLockConversation, kLockConversationSql},
      {kConversationExists, kConversationExistsSql},
      {kCountShares, kCountSharesSql},
      {kMeasure, kMeasureSql},
      {kInsertShare, kInsertShareSql},
      {kCopyMessages, kCopyMessagesSql},
      {kListShares, kListSharesSql},
      {kDeleteShare, kDeleteShareSql},
      {kShared, kSharedSql},
  };
}

absl::StatusOr<StoredShare> ShareStorage::CreateShare(
    const std::string& user_id, const ShareRecord& share,
    const std::string& token_hash, const ShareLimits& limits) {
  return pool_->Transact<StoredShare>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<StoredShare> {
        pqxx::result conversation =
            tx.exec_prepared(kLockConversation, user_id, share.conversation_id);
        if (conversation.empty()) return ConversationNotFound();
        const std::string title = conversation[0][0].as<std::string>();
        if (tx.exec_prepared1(kCountShares, user_id, share.conversation_id)[0]
                .as<int64_t>() >= limits.max_shares) {
          return StoredShare{.refusal = ShareRefusal::kTooManyShares};
        }
        const pqxx::row size =
            tx.exec_prepared1(kMeasure, user_id, share.conversation_id);
        const int64_t count = size[0].as<int64_t>();
        if (count == 0) return StoredShare{.refusal = ShareRefusal::kEmpty};
        if (count > limits.max_messages ||
            size[1].as<int64_t>() > limits.max_content_bytes) {
          return StoredShare{.refusal = ShareRefusal::kTooLarge};
        }
        tx.exec_prepared0(kInsertShare, user_id, share.conversation_id,
                          share.id, token_hash, title, count,
                          PgTime(share.created_at));
        tx.exec_prepared0(kCopyMessages, user_id, share.conversation_id,
                          share.id);
        ShareRecord made = share;
        made.message_count = static_cast<int>(count);
        return StoredShare{.share = made};
      });
}

absl::StatusOr<std::vector<ShareRecord>> ShareStorage::ListShares(
    const std::string& user_id, const std::string& conversation_id) {
  return pool_->Transact<std::vector<ShareRecord>>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<std::vector<ShareRecord>> {
        pqxx::result rows =
            tx.exec_prepared(kListShares, user_id, conversation_id);
        if (rows.empty() &&
            tx.exec_prepared(kConversationExists, user_id, conversation_id)
                .empty()) {
          return ConversationNotFound();
        }
        std::vector<ShareRecord> shares;
        shares.reserve(rows.size());
        for (const pqxx::row& row : rows) {
          shares.push_back({.id = row[0].as<std::string>(),
                            .conversation_id = row[1].as<std::string>(),
                            .message_count = row[2].as<int>(),
                            .created_at = FromPgMicros(row[3].as<int64_t>())});
        }
        return shares;
      });
}

absl::Status ShareStorage::DeleteShare(const std::string& user_id,
                                       const std::string& conversation_id,
                                       const std::string& share_id) {
  return pool_->Transact(user_id, [&](pqxx::work& tx) -> absl::Status {
    if (tx.exec_prepared(kDeleteShare, user_id, conversation_id, share_id)
            .affected_rows() == 0) {
      return ShareNotFound();
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<SharedSnapshot> ShareStorage::SharedByToken(
    const std::string& token_hash) {
  return pool_->Transact<SharedSnapshot>(
      "", [&](pqxx::work& tx) -> absl::StatusOr<SharedSnapshot> {
        pqxx::result rows = tx.exec_prepared(kShared, token_hash);
        if (rows.empty()) return ShareNotFound();
        SharedSnapshot snapshot;
        snapshot.title = rows[0][0].as<std::string>();
        snapshot.created_at = FromPgMicros(rows[0][1].as<int64_t>());
        snapshot.messages.reserve(rows.size());
        for (const pqxx::row& row : rows) {
          if (row[2].is_null()) continue;  // a share without messages
          snapshot.messages.push_back(
              {.role =
                   ParseRole(row[2].as<std::string>()).value_or(Role::kUser),
               .content = row[3].as<std::string>(),
               .model = row[4].as<std::string>(),
               .created_at = FromPgMicros(row[5].as<int64_t>())});
        }
        return snapshot;
      });
}

}  // namespace chat::message
