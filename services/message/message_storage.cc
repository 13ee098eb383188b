#include "services/message/message_storage.h"

#include <openssl/rand.h>

#include <limits>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/idempotency_storage.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "services/message/message_rows.h"

namespace chat::message {
namespace {

// One round trip (see the function): $4 is the parent, NULL for the leaf of
// the active branch, the nil UUID for a new root.
constexpr char kAppend[] = "message_append";
constexpr char kAppendSql[] =
    "SELECT * FROM append_message($1::uuid, $2::uuid, $3::uuid, $4::uuid, "
    "$5, $6, $7, $8, $9::timestamptz, $10::jsonb)";

constexpr char kGet[] = "message_get";
constexpr char kGetSql[] =
    "SELECT " MESSAGE_COLUMNS " FROM messages m" SIBLINGS
    "WHERE m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "AND m.id = $3::uuid";

// A page also ends once the content before a row reaches $5 bytes: the
// running sum reads only the stored sizes (octet_length does not detoast),
// and the limit stops the index scan, so a deep page costs a first page's.
// The active branch reads the partial index of active messages: along a
// branch, position order is depth order.
constexpr char kListAscending[] = "message_list_asc";
constexpr char kListAscendingSql[] =
    "SELECT " MESSAGE_COLUMNS
    " FROM (SELECT m.*, sum(octet_length(m.content)) OVER (ORDER BY m.seq "
    "ASC) - octet_length(m.content) AS content_before FROM messages m "
    "WHERE m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "AND m.active AND m.seq > $3 ORDER BY m.seq ASC LIMIT $4) m" SIBLINGS
    "WHERE m.content_before <= $5 ORDER BY m.seq ASC";

constexpr char kListDescending[] = "message_list_desc";
constexpr char kListDescendingSql[] =
    "SELECT " MESSAGE_COLUMNS
    " FROM (SELECT m.*, sum(octet_length(m.content)) OVER (ORDER BY m.seq "
    "DESC) - octet_length(m.content) AS content_before FROM messages m "
    "WHERE m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "AND m.active AND m.seq < $3 ORDER BY m.seq DESC LIMIT $4) m" SIBLINGS
    "WHERE m.content_before <= $5 ORDER BY m.seq DESC";

constexpr char kListAllAscending[] = "message_list_all_asc";
constexpr char kListAllAscendingSql[] =
    "SELECT " MESSAGE_COLUMNS
    " FROM (SELECT m.*, sum(octet_length(m.content)) OVER (ORDER BY m.seq "
    "ASC) - octet_length(m.content) AS content_before FROM messages m "
    "WHERE m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "AND m.seq > $3 ORDER BY m.seq ASC LIMIT $4) m" SIBLINGS
    "WHERE m.content_before <= $5 ORDER BY m.seq ASC";

constexpr char kListAllDescending[] = "message_list_all_desc";
constexpr char kListAllDescendingSql[] =
    "SELECT " MESSAGE_COLUMNS
    " FROM (SELECT m.*, sum(octet_length(m.content)) OVER (ORDER BY m.seq "
    "DESC) - octet_length(m.content) AS content_before FROM messages m "
    "WHERE m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "AND m.seq < $3 ORDER BY m.seq DESC LIMIT $4) m" SIBLINGS
    "WHERE m.content_before <= $5 ORDER BY m.seq DESC";

constexpr char kConversationExists[] = "message_conversation_exists";
constexpr char kConversationExistsSql[] =
    "SELECT 1 FROM conversations WHERE user_id = $1::uuid AND id = $2::uuid";

// After an empty page read without a transaction (DbReader): whether the
// account still exists (the read's setting was made) and the conversation
// is the user's. One row, always.
constexpr char kListVisible[] = "message_list_visible";
constexpr char kListVisibleSql[] =
    "SELECT current_setting('app.user_id', true) IS NOT DISTINCT FROM "
    "$1::text, EXISTS (SELECT 1 FROM conversations WHERE user_id = "
    "$1::uuid AND id = $2::uuid)";

constexpr char kLockConversation[] = "message_lock_conversation";
constexpr char kLockConversationSql[] =
    "SELECT title, untitled, metadata::text FROM conversations "
    "WHERE user_id = $1::uuid AND id = $2::uuid FOR NO KEY UPDATE";

constexpr char kUpdate[] = "message_update";
constexpr char kUpdateSql[] =
    "WITH m AS (UPDATE messages SET content = COALESCE($4, content), "
    "metadata = COALESCE($5::jsonb, metadata), updated_at = $6::timestamptz "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid AND id = $3::uuid "
    "RETURNING *) SELECT " MESSAGE_COLUMNS " FROM m" SIBLINGS;

constexpr char kTouchConversation[] = "message_touch_conversation";
constexpr char kTouchConversationSql[] =
    "UPDATE conversations SET updated_at = GREATEST(updated_at, "
    "$3::timestamptz) "
    "WHERE user_id = $1::uuid AND id = $2::uuid";

constexpr char kPlace[] = "message_place";
constexpr char kPlaceSql[] =
    "SELECT parent_id::text, active FROM messages "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid AND id = $3::uuid";

// The message and every message below it.
constexpr char kDeleteSubtree[] = "message_delete_subtree";
constexpr char kDeleteSubtreeSql[] =
    "WITH RECURSIVE subtree AS ("
    "  SELECT $3::uuid AS id "
    "  UNION ALL "
    "  SELECT c.id FROM subtree JOIN messages c ON c.user_id = $1::uuid "
    "    AND c.conversation_id = $2::uuid AND c.parent_id = subtree.id) "
    "DELETE FROM messages d USING subtree WHERE d.user_id = $1::uuid "
    "AND d.conversation_id = $2::uuid AND d.id = subtree.id";

// After deleting a message of the active branch: the branch ends at its
// parent, the deepest survivor of the path; after a root, at the newest
// leaf under the newest remaining root (or nowhere).
constexpr char kEndBranchAt[] = "message_end_branch_at";
constexpr char kEndBranchAtSql[] =
    "SELECT set_active_path($1::uuid, $2::uuid, CASE WHEN $3::uuid <> " NIL_UUID
    " THEN $3::uuid ELSE COALESCE(newest_leaf_under($1::uuid, $2::uuid, "
    "(SELECT r.id FROM messages r WHERE r.user_id = $1::uuid "
    "AND r.conversation_id = $2::uuid AND r.parent_id = " NIL_UUID
    " ORDER BY r.seq DESC LIMIT 1)), " NIL_UUID ") END)";

// After a delete: the count drops by the messages deleted and
// last_message_at is the newest remaining message's (by position, through
// the primary key).
constexpr char kUncount[] = "message_uncount";
constexpr char kUncountSql[] =
    "UPDATE conversations SET message_count = message_count - $4, "
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
    "active_leaf_id = NULL, "
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

// The path up from a message through its parents, newest first, while the
// usable messages (none failed or empty) fit $4 messages and $5 characters
// (running counts, so the result is a prefix). Each step is one probe of
// the primary-key-like (user, conversation, id) index.
constexpr char kContext[] = "message_context";
constexpr char kContextSql[] =
    "WITH RECURSIVE path AS ("
    "  SELECT m.parent_id, m.role, m.content, 1 AS depth, u.usable, "
    "    u.usable::int AS kept, "
    "    CASE WHEN u.usable THEN length(m.content) ELSE 0 END::bigint AS used "
    "  FROM messages m CROSS JOIN LATERAL (SELECT m.status <> 'failed' "
    "    AND m.content <> '' AS usable) u "
    "  WHERE m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "    AND m.id = $3::uuid "
    "  UNION ALL "
    "  SELECT m.parent_id, m.role, m.content, p.depth + 1, u.usable, "
    "    p.kept + u.usable::int, "
    "    p.used + CASE WHEN u.usable THEN length(m.content) ELSE 0 END "
    "  FROM path p JOIN messages m ON m.user_id = $1::uuid "
    "    AND m.conversation_id = $2::uuid AND m.id = p.parent_id "
    "  CROSS JOIN LATERAL (SELECT m.status <> 'failed' AND m.content <> '' "
    "    AS usable) u "
    "  WHERE p.kept < $4 AND p.used <= $5) "
    "SELECT role, content FROM path WHERE usable AND kept <= $4 AND used <= $5 "
    "ORDER BY depth";

// The path from the root to a message, root first.
constexpr char kPathIds[] = "message_path_ids";
constexpr char kPathIdsSql[] =
    "WITH RECURSIVE up AS ("
    "  SELECT m.id, m.parent_id, 1 AS depth FROM messages m "
    "  WHERE m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "    AND m.id = $3::uuid "
    "  UNION ALL "
    "  SELECT m.id, m.parent_id, up.depth + 1 FROM up JOIN messages m "
    "    ON m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "    AND m.id = up.parent_id) "
    "SELECT id::text FROM up ORDER BY depth DESC";

// Starts of replies take turns per user, across replicas, so that the
// count of replies in progress holds.
// deploy/migrations/0010_start_reply.sql: the per-user cap, the prompt and
// the reply with its owner; rows as kAppend's, then `part`.
constexpr char kStartReply[] = "message_start_reply";
constexpr char kStartReplySql[] =
    "SELECT * FROM start_reply($1::uuid, $2::uuid, $3, $4, $5::uuid, "
    "$6::uuid, $7, $8, $9, $10, $11::timestamptz, $12::jsonb, $13::uuid, "
    "$14::uuid, $15, $16, $17, $18, $19::timestamptz, $20::jsonb)";
constexpr int kStartReplyPart = 13;

// The replies in progress of one owner, in one statement: $3 a JSON array
// of {"user_id","conversation_id","id","text","touch"}. A text is stored
// with $2 as updated_at; without one ("text" absent), "touch" stores $2
// alone, and otherwise the row is only read: most replies in progress have
// no new text at most saves, and a read writes no WAL. Answers the ids
// still in progress under the owner.
// Reads across users through the owner's policies
// (deploy/migrations/0009_reply_saves.sql), named by kSetReplyOwner.
constexpr char kSetReplyOwner[] = "message_set_reply_owner";
constexpr char kSetReplyOwnerSql[] =
    "SELECT set_config('app.reply_owner', $1::bigint::text, true)";

constexpr char kSaveReplyTexts[] = "message_save_reply_texts";
constexpr char kSaveReplyTextsSql[] =
    "WITH v AS (SELECT * FROM jsonb_to_recordset($3::jsonb) AS v(user_id "
    "uuid, conversation_id uuid, id uuid, text text, touch boolean)), "
    "saved AS (UPDATE messages m SET content = COALESCE(v.text, m.content), "
    "updated_at = $2::timestamptz FROM v "
    "WHERE (v.text IS NOT NULL OR v.touch) AND m.user_id = v.user_id "
    "AND m.conversation_id = v.conversation_id AND m.id = v.id "
    "AND m.status = 'in_progress' AND m.owner_key = $1 RETURNING m.id) "
    "SELECT id FROM saved UNION ALL "
    "SELECT m.id FROM v JOIN messages m ON m.user_id = v.user_id "
    "AND m.conversation_id = v.conversation_id AND m.id = v.id "
    "WHERE v.text IS NULL AND NOT v.touch "
    "AND m.status = 'in_progress' AND m.owner_key = $1";

constexpr char kFinishReply[] = "message_finish_reply";
constexpr char kFinishReplySql[] =
    "WITH m AS (UPDATE messages SET content = $5, status = $6, model = $7, "
    "owner_key = NULL, updated_at = $8::timestamptz "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid "
    "AND id = $3::uuid AND status = 'in_progress' AND owner_key = $4 "
    "RETURNING *) SELECT " MESSAGE_COLUMNS " FROM m" SIBLINGS;

constexpr char kCancelReply[] = "message_cancel_reply";
constexpr char kCancelReplySql[] =
    "WITH m AS (UPDATE messages SET status = 'incomplete', owner_key = NULL, "
    "updated_at = $4::timestamptz "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid "
    "AND id = $3::uuid AND status = 'in_progress' "
    "RETURNING *) SELECT " MESSAGE_COLUMNS " FROM m" SIBLINGS;

// Recovery (deploy/migrations/0008_durable_replies.sql): the owners of
// replies in progress, and their replies once an owner is gone.
constexpr char kReplyOwners[] = "message_reply_owners";
constexpr char kReplyOwnersSql[] =
    "SELECT DISTINCT COALESCE(owner_key, 0) FROM messages "
    "WHERE status = 'in_progress'";

constexpr char kOrphanReplies[] = "message_orphan_replies";
constexpr char kOrphanRepliesSql[] =
    "UPDATE messages SET status = 'incomplete', owner_key = NULL, "
    "updated_at = $2::timestamptz "
    "WHERE status = 'in_progress' AND COALESCE(owner_key, 0) = $1 "
    "AND updated_at < $3::timestamptz";

// The fork's conversation: $5 its title (empty: the source's), $6 how many
// messages it gets, $7 the id of the last one.
constexpr char kInsertFork[] = "message_insert_fork";
constexpr char kInsertForkSql[] =
    "INSERT INTO conversations (user_id, id, title, untitled, metadata, "
    "message_count, last_seq, last_message_at, active_leaf_id, created_at, "
    "updated_at) "
    "SELECT $1::uuid, $3::uuid, COALESCE(NULLIF($5, ''), c.title), "
    "$5 = '' AND c.untitled, c.metadata, $6, $6, "
    "(SELECT m.created_at FROM messages m WHERE m.user_id = $1::uuid "
    "  AND m.conversation_id = $2::uuid AND m.id = $4::uuid), $7::uuid, "
    "$8::timestamptz, $8::timestamptz "
    "FROM conversations c WHERE c.user_id = $1::uuid AND c.id = $2::uuid "
    "RETURNING title, metadata::text, "
    "(extract(epoch FROM last_message_at) * 1000000)::bigint";

// Copies of the path ($4, root first) under the new ids ($5), each the
// child of the one before. A reply still in progress is copied as
// incomplete: nothing will finish the copy.
constexpr char kCopyPath[] = "message_copy_path";
constexpr char kCopyPathSql[] =
    "INSERT INTO messages (user_id, conversation_id, seq, id, parent_id, "
    "active, role, content, status, model, metadata, created_at, updated_at) "
    "SELECT $1::uuid, $3::uuid, p.position, p.new_id, "
    "COALESCE(lag(p.new_id) OVER (ORDER BY p.position), " NIL_UUID
    "), true, m.role, m.content, "
    "CASE WHEN m.status = 'in_progress' THEN 'incomplete' ELSE m.status END, "
    "m.model, m.metadata, m.created_at, m.updated_at "
    "FROM unnest($4::uuid[], $5::uuid[]) WITH ORDINALITY "
    "  AS p(old_id, new_id, position) "
    "JOIN messages m ON m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "  AND m.id = p.old_id";

absl::Status ConversationNotFound() {
  return absl::NotFoundError("conversation not found");
}

absl::Status MessageNotFound() {
  return absl::NotFoundError("message not found");
}

// Locks the conversation row; NOT_FOUND when the user has no such one.
absl::StatusOr<pqxx::row> LockConversation(pqxx::work& tx,
                                           const std::string& user_id,
                                           const std::string& conversation_id) {
  pqxx::result rows =
      tx.exec_prepared(kLockConversation, user_id, conversation_id);
  if (rows.empty()) return ConversationNotFound();
  return rows[0];
}

}  // namespace

std::vector<PreparedStatement> MessageStorage::Statements() {
  return WithStatements(
      {
          {kAppend, kAppendSql},
          {kGet, kGetSql},
          // A page is read in index order whatever its arguments, and
          // PostgreSQL, left to choose, planned every call again: half of a
          // page's time (tests/integration/list_plan_test.cc).
          {kListAscending, kListAscendingSql, /*generic_plan=*/true},
          {kListDescending, kListDescendingSql, /*generic_plan=*/true},
          {kListAllAscending, kListAllAscendingSql, /*generic_plan=*/true},
          {kListAllDescending, kListAllDescendingSql, /*generic_plan=*/true},
          {kConversationExists, kConversationExistsSql},
          {kListVisible, kListVisibleSql},
          {kLockConversation, kLockConversationSql},
          {kUpdate, kUpdateSql},
          {kTouchConversation, kTouchConversationSql},
          {kPlace, kPlaceSql},
          {kDeleteSubtree, kDeleteSubtreeSql},
          {kEndBranchAt, kEndBranchAtSql},
          {kUncount, kUncountSql},
          {kClear, kClearSql},
          {kUncountAll, kUncountAllSql},
          {kUntitledFirstMessage, kUntitledFirstMessageSql},
          {kSetTitle, kSetTitleSql},
          {kContext, kContextSql},
          {kPathIds, kPathIdsSql},
          {kInsertFork, kInsertForkSql},
          {kCopyPath, kCopyPathSql},
          {kStartReply, kStartReplySql},
          {kSetReplyOwner, kSetReplyOwnerSql},
          {kSaveReplyTexts, kSaveReplyTextsSql},
          {kFinishReply, kFinishReplySql},
          {kCancelReply, kCancelReplySql},
          {kReplyOwners, kReplyOwnersSql},
          {kOrphanReplies, kOrphanRepliesSql},
      },
      IdempotencyStatements());
}

namespace {

// append_message in an open transaction; NOT_FOUND as Append.
absl::StatusOr<MessageRecord> AppendIn(
    pqxx::work& tx, const std::string& user_id, const MessageRecord& message,
    const std::optional<std::string>& parent_id) {
  pqxx::result rows = tx.exec_prepared(
      kAppend, user_id, message.conversation_id, message.id, parent_id,
      std::string(RoleName(message.role)), message.content,
      std::string(StatusName(message.status)), message.model,
      PgTime(message.created_at), MetadataToJson(message.metadata));
  if (!rows.empty()) return MessageFromRow(rows[0]);
  // No row: no such conversation, or no such parent in it.
  if (tx.exec_prepared(kConversationExists, user_id, message.conversation_id)
          .empty()) {
    return ConversationNotFound();
  }
  return absl::NotFoundError("parent message not found");
}

// kContext in an open transaction; empty when `last_id` is "".
std::vector<ContextMessage> ContextIn(pqxx::work& tx,
                                      const std::string& user_id,
                                      const std::string& conversation_id,
                                      const std::string& last_id,
                                      int max_messages, int64_t budget_chars) {
  std::vector<ContextMessage> context;
  if (last_id.empty()) return context;
  for (const pqxx::row& row :
       tx.exec_prepared(kContext, user_id, conversation_id, last_id,
                        max_messages, budget_chars)) {
    context.push_back(
        {ParseRole(row[0].as<std::string>()).value_or(Role::kUser),
         row[1].as<std::string>()});
  }
  return context;
}

// The parent as append_message takes it: NULL for the active leaf, the nil
// UUID for a new root. NOT_FOUND for the nil UUID itself: it marks roots
// inside the database, and no message has it.
absl::StatusOr<std::optional<std::string>> ParentParameter(
    const ParentChoice& parent) {
  if (!parent) return std::optional<std::string>();
  if (*parent == kNilUuid) {
    return absl::NotFoundError("parent message not found");
  }
  return std::optional<std::string>(parent->empty() ? kNilUuid : *parent);
}

}  // namespace

absl::StatusOr<MessageRecord> MessageStorage::Append(
    const std::string& user_id, const MessageRecord& message,
    const ParentChoice& parent, const std::optional<IdempotencyKey>& key) {
  ASSIGN_OR_RETURN(std::optional<std::string> parent_id,
                   ParentParameter(parent));
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
            return MessageFromRow(rows[0]);
          }
        }
        return AppendIn(tx, user_id, message, parent_id);
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
        return MessageFromRow(rows[0]);
      });
}

namespace {

const char* ListStatement(Branch branch, bool descending) {
  return branch == Branch::kAll
             ? (descending ? kListAllDescending : kListAllAscending)
             : (descending ? kListDescending : kListAscending);
}

// The position a page starts after: before the first message, or after the
// last one when descending.
int64_t ListStart(std::optional<int64_t> after, bool descending) {
  return after.value_or(descending ? std::numeric_limits<int64_t>::max() : 0);
}

}  // namespace

absl::StatusOr<std::vector<MessageRecord>> MessageStorage::List(
    const std::string& user_id, const std::string& conversation_id,
    Branch branch, bool descending, std::optional<int64_t> after, int limit,
    int64_t content_budget) {
  const char* statement = ListStatement(branch, descending);
  const int64_t from = ListStart(after, descending);
  // Most pages have rows: one round trip. An empty one asks again in a
  // transaction that tells an empty page from a missing conversation.
  ASSIGN_OR_RETURN(std::optional<pqxx::result> rows,
                   pool_->ReadRows(user_id, statement, user_id, conversation_id,
                                   from, limit, content_budget));
  if (!rows) {
    ASSIGN_OR_RETURN(
        rows,
        pool_->Transact<std::optional<pqxx::result>>(
            user_id,
            [&](pqxx::work& tx) -> absl::StatusOr<std::optional<pqxx::result>> {
              pqxx::result rows =
                  tx.exec_prepared(statement, user_id, conversation_id, from,
                                   limit, content_budget);
              // An empty page costs one more look: is there a conversation
              // at all?
              if (rows.empty() && tx.exec_prepared(kConversationExists, user_id,
                                                   conversation_id)
                                      .empty()) {
                return ConversationNotFound();
              }
              return rows;
            }));
  }
  std::vector<MessageRecord> page;
  page.reserve(rows->size());
  for (const pqxx::row& row : *rows) page.push_back(MessageFromRow(row));
  return page;
}

void MessageStorage::ListAsync(const std::string& user_id,
                               const std::string& conversation_id,
                               Branch branch, bool descending,
                               std::optional<int64_t> after, int limit,
                               int64_t content_budget, ListDone done) {
  if (reader_ == nullptr) {
    MessageStore::ListAsync(user_id, conversation_id, branch, descending, after,
                            limit, content_budget, std::move(done));
    return;
  }
  const char* statement = ListStatement(branch, descending);
  const int64_t from = ListStart(after, descending);
  reader_->Read(
      user_id, statement,
      [reader = reader_, user_id, conversation_id,
       done = std::move(done)](DbReader::Rows rows) mutable {
        if (!rows.ok()) {
          std::move(done)(rows.status());
          return;
        }
        if (*rows) {
          std::vector<MessageRecord> page;
          page.reserve((*rows)->size());
          for (int i = 0; i < (*rows)->size(); ++i) {
            page.push_back(MessageFromRow(**rows, i));
          }
          std::move(done)(std::move(page));
          return;
        }
        // No rows: an empty page, no such conversation, or no account.
        reader->Read(
            user_id, kListVisible,
            [done = std::move(done)](DbReader::Rows seen) mutable {
              if (!seen.ok()) {
                std::move(done)(seen.status());
              } else if (!*seen || !DbColumnReader(**seen, 0).As<bool>()) {
                std::move(done)(AccountGoneError());
              } else if (!DbColumnReader(**seen, 0, 1).As<bool>()) {
                std::move(done)(ConversationNotFound());
              } else {
                std::move(done)(std::vector<MessageRecord>());
              }
            },
            user_id, conversation_id);
      },
      user_id, conversation_id, from, limit, content_budget);
}

absl::StatusOr<MessageRecord> MessageStorage::Update(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id, const MessageChange& change, absl::Time now) {
  std::optional<std::string> metadata;
  if (change.metadata) metadata = MetadataToJson(*change.metadata);
  return pool_->Transact<MessageRecord>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<MessageRecord> {
        RETURN_IF_ERROR(
            LockConversation(tx, user_id, conversation_id).status());
        pqxx::result rows =
            tx.exec_prepared(kUpdate, user_id, conversation_id, id,
                             change.content, metadata, PgTime(now));
        if (rows.empty()) return MessageNotFound();
        tx.exec_prepared0(kTouchConversation, user_id, conversation_id,
                          PgTime(now));
        return MessageFromRow(rows[0]);
      });
}

absl::Status MessageStorage::Delete(const std::string& user_id,
                                    const std::string& conversation_id,
                                    const std::string& id, absl::Time now) {
  return pool_->Transact(user_id, [&](pqxx::work& tx) -> absl::Status {
    RETURN_IF_ERROR(LockConversation(tx, user_id, conversation_id).status());
    pqxx::result place = tx.exec_prepared(kPlace, user_id, conversation_id, id);
    if (place.empty()) return MessageNotFound();
    const std::string parent_id = place[0][0].as<std::string>();
    const bool active = place[0][1].as<bool>();
    const int64_t deleted =
        tx.exec_prepared(kDeleteSubtree, user_id, conversation_id, id)
            .affected_rows();
    if (active) {
      tx.exec_prepared(kEndBranchAt, user_id, conversation_id, parent_id);
    }
    tx.exec_prepared0(kUncount, user_id, conversation_id, PgTime(now), deleted);
    return absl::OkStatus();
  });
}

absl::Status MessageStorage::Clear(const std::string& user_id,
                                   const std::string& conversation_id,
                                   absl::Time now) {
  return pool_->Transact(user_id, [&](pqxx::work& tx) -> absl::Status {
    RETURN_IF_ERROR(LockConversation(tx, user_id, conversation_id).status());
    tx.exec_prepared0(kClear, user_id, conversation_id);
    tx.exec_prepared0(kUncountAll, user_id, conversation_id, PgTime(now));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<ContextMessage>> MessageStorage::ContextPath(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& last_id, int max_messages, int64_t budget_chars) {
  if (last_id.empty()) return std::vector<ContextMessage>{};
  return pool_->Transact<std::vector<ContextMessage>>(
      user_id,
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<ContextMessage>> {
        return ContextIn(tx, user_id, conversation_id, last_id, max_messages,
                         budget_chars);
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

absl::StatusOr<ForkedConversation> MessageStorage::Fork(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& message_id, const ForkedConversation& fork,
    const std::function<std::string()>& new_id) {
  return pool_->Transact<ForkedConversation>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<ForkedConversation> {
        // The source stays as it is while its path is copied.
        RETURN_IF_ERROR(
            LockConversation(tx, user_id, conversation_id).status());
        std::vector<std::string> path;
        for (const pqxx::row& row :
             tx.exec_prepared(kPathIds, user_id, conversation_id, message_id)) {
          path.push_back(row[0].as<std::string>());
        }
        if (path.empty()) return MessageNotFound();
        std::vector<std::string> copies;
        copies.reserve(path.size());
        for (size_t i = 0; i < path.size(); ++i) copies.push_back(new_id());

        ForkedConversation made = fork;
        made.message_count = static_cast<int64_t>(path.size());
        made.active_leaf_id = copies.back();
        const pqxx::row row =
            tx.exec_prepared1(kInsertFork, user_id, conversation_id, fork.id,
                              path.back(), fork.title, made.message_count,
                              made.active_leaf_id, PgTime(fork.created_at));
        made.title = row[0].as<std::string>();
        made.metadata =
            MetadataFromJson(row[1].as<std::string>()).value_or(Metadata{});
        if (!row[2].is_null()) {
          made.last_message_at = FromPgMicros(row[2].as<int64_t>());
        }
        tx.exec_prepared0(kCopyPath, user_id, conversation_id, fork.id,
                          UuidArray(path), UuidArray(copies));
        return made;
      });
}

absl::StatusOr<StartedReply> MessageStorage::StartReply(
    const std::string& user_id, const std::optional<MessageRecord>& prompt,
    const ParentChoice& prompt_parent, const MessageRecord& reply,
    const ParentChoice& reply_parent, int64_t owner, int max_in_progress,
    const ContextLimits& context) {
  ASSIGN_OR_RETURN(std::optional<std::string> prompt_parent_id,
                   ParentParameter(prompt_parent));
  ASSIGN_OR_RETURN(std::optional<std::string> reply_parent_id,
                   ParentParameter(reply_parent));
  // A NULL prompt: Regenerate's reply alone.
  const MessageRecord none;
  const MessageRecord& p = prompt ? *prompt : none;
  std::optional<std::string> prompt_id;
  if (prompt) prompt_id = prompt->id;
  return pool_->Transact<StartedReply>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<StartedReply> {
        pqxx::result rows = tx.exec_prepared(
            kStartReply, user_id, reply.conversation_id, owner, max_in_progress,
            prompt_id, prompt_parent_id, std::string(RoleName(p.role)),
            p.content, std::string(StatusName(p.status)), p.model,
            PgTime(p.created_at), MetadataToJson(p.metadata), reply.id,
            reply_parent_id, std::string(RoleName(reply.role)), reply.content,
            std::string(StatusName(reply.status)), reply.model,
            PgTime(reply.created_at), MetadataToJson(reply.metadata));
        StartedReply started;
        bool stored = false;
        for (const pqxx::row& row : rows) {
          const std::string_view part = row[kStartReplyPart].c_str();
          if (part == "capped") {
            return ResourceExhaustedRetryAfter(
                "too many replies in progress for this user at once",
                absl::Seconds(1));
          }
          if (part == "prompt") {
            started.prompt = MessageFromRow(row);
          } else {
            started.reply = MessageFromRow(row);
            stored = true;
          }
        }
        if (!stored) {
          // No row: no such conversation, or no such parent in it.
          if (tx.exec_prepared(kConversationExists, user_id,
                               reply.conversation_id)
                  .empty()) {
            return ConversationNotFound();
          }
          return absl::NotFoundError("parent message not found");
        }
        if (started.prompt && context.budget_chars > 0) {
          started.context = ContextIn(
              tx, user_id, reply.conversation_id, started.prompt->parent_id,
              context.max_messages, context.budget_chars);
        }
        return started;
      });
}

absl::StatusOr<absl::flat_hash_set<std::string>> MessageStorage::SaveReplyTexts(
    int64_t owner, const std::vector<ReplyText>& replies, absl::Time now) {
  if (replies.empty()) return absl::flat_hash_set<std::string>();
  std::string batch = "[";
  for (const ReplyText& r : replies) {
    absl::StrAppend(&batch, batch.size() > 1 ? "," : "",
                    "{\"user_id\":", JsonQuote(r.user_id),
                    ",\"conversation_id\":", JsonQuote(r.conversation_id),
                    ",\"id\":", JsonQuote(r.id));
    if (r.text) absl::StrAppend(&batch, ",\"text\":", JsonQuote(*r.text));
    absl::StrAppend(&batch, ",\"touch\":", r.touch ? "true" : "false", "}");
  }
  batch += "]";
  return pool_->Transact<absl::flat_hash_set<std::string>>(
      "",
      [&](pqxx::work& tx) -> absl::StatusOr<absl::flat_hash_set<std::string>> {
        tx.exec_prepared(kSetReplyOwner, owner);
        absl::flat_hash_set<std::string> ours;
        for (const pqxx::row& row :
             tx.exec_prepared(kSaveReplyTexts, owner, PgTime(now), batch)) {
          ours.insert(row[0].as<std::string>());
        }
        return ours;
      });
}

absl::StatusOr<std::optional<MessageRecord>> MessageStorage::FinishReply(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id, int64_t owner, const std::string& text,
    MessageStatus status, const std::string& model, absl::Time now) {
  return pool_->Transact<std::optional<MessageRecord>>(
      user_id,
      [&](pqxx::work& tx) -> absl::StatusOr<std::optional<MessageRecord>> {
        pqxx::result rows = tx.exec_prepared(
            kFinishReply, user_id, conversation_id, id, owner, text,
            std::string(StatusName(status)), model, PgTime(now));
        if (rows.empty()) return std::optional<MessageRecord>();
        return std::optional<MessageRecord>(MessageFromRow(rows[0]));
      });
}

absl::StatusOr<MessageRecord> MessageStorage::CancelReply(
    const std::string& user_id, const std::string& conversation_id,
    const std::string& id, absl::Time now) {
  return pool_->Transact<MessageRecord>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<MessageRecord> {
        pqxx::result rows = tx.exec_prepared(kCancelReply, user_id,
                                             conversation_id, id, PgTime(now));
        if (rows.empty())
          rows = tx.exec_prepared(kGet, user_id, conversation_id, id);
        if (rows.empty()) return MessageNotFound();
        return MessageFromRow(rows[0]);
      });
}

absl::StatusOr<std::unique_ptr<ReplyOwnership>> ReplyOwnership::Acquire(
    const std::string& url) {
  try {
    auto connection = std::make_unique<pqxx::connection>(url);
    pqxx::nontransaction tx(*connection);
    // A random positive key; 0 stands for "no owner" in recovery.
    for (;;) {
      uint64_t random = 0;
      RAND_bytes(reinterpret_cast<unsigned char*>(&random), sizeof random);
      const int64_t key = static_cast<int64_t>(random >> 1);
      if (key != 0 && tx.exec_params1("SELECT pg_try_advisory_lock($1)", key)[0]
                          .as<bool>()) {
        return std::unique_ptr<ReplyOwnership>(
            new ReplyOwnership(std::move(connection), url, key));
      }
    }
  } catch (const std::exception& e) {
    return StatusFromDbError(e);
  }
}

absl::StatusOr<int64_t> ReplyOwnership::RecoverOrphans(DbPool* pool,
                                                       absl::Time now,
                                                       absl::Duration grace) {
  return pool->Transact<int64_t>(
      "", [&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
        tx.exec("SET LOCAL app.reply_recovery = 'on'");
        // Both statements have messages_in_progress_idx, which holds only
        // the rows in progress. Statistics taken during a burst of replies
        // would have PostgreSQL read all of messages instead, until the
        // next ANALYZE (as start_reply would: migration 0016).
        tx.exec("SET LOCAL enable_seqscan = off");
        int64_t recovered = 0;
        for (const pqxx::row& row : tx.exec_prepared(kReplyOwners)) {
          const int64_t key = row[0].as<int64_t>();
          if (key == key_) continue;
          // The lock is free only when its owner's session is gone.
          if (key != 0 &&
              !tx.exec_params1("SELECT pg_try_advisory_lock($1)", key)[0]
                   .as<bool>()) {
            continue;
          }
          if (key != 0) tx.exec_params("SELECT pg_advisory_unlock($1)", key);
          recovered += tx.exec_prepared(kOrphanReplies, key, PgTime(now),
                                        PgTime(now - grace))
                           .affected_rows();
        }
        return recovered;
      });
}

absl::Status ReplyOwnership::KeepAlive() {
  try {
    pqxx::nontransaction tx(*connection_);
    tx.exec("SELECT 1");
    return absl::OkStatus();
  } catch (const std::exception&) {
    // The session is gone, and the lock with it: take it again.
  }
  try {
    auto connection = std::make_unique<pqxx::connection>(url_);
    pqxx::nontransaction tx(*connection);
    if (!tx.exec_params1("SELECT pg_try_advisory_lock($1)", key_)[0]
             .as<bool>()) {
      return absl::UnavailableError("the reply owner's lock is taken");
    }
    connection_ = std::move(connection);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return StatusFromDbError(e);
  }
}

ReplyRecovery::ReplyRecovery(ReplyOwnership* ownership, DbPool* pool,
                             const Clock* clock, absl::Duration interval,
                             absl::Duration grace)
    : ownership_(ownership),
      pool_(pool),
      clock_(clock),
      grace_(grace),
      thread_(absl::ToChronoNanoseconds(interval), [this] { RunOnce(); }) {}

void ReplyRecovery::RunOnce() {
  if (absl::Status alive = ownership_->KeepAlive(); !alive.ok()) {
    log::Warn("cannot hold the reply owner's lock",
              {{"error", alive.message()}});
  }
  absl::StatusOr<int64_t> recovered =
      ownership_->RecoverOrphans(pool_, ToMicroseconds(clock_->Now()), grace_);
  if (!recovered.ok()) {
    log::Warn("cannot recover replies of gone replicas",
              {{"error", recovered.status().message()}});
  } else if (*recovered > 0) {
    log::Info("replies of gone replicas marked incomplete",
              {{"count", absl::StrCat(*recovered)}});
  }
}

}  // namespace chat::message
