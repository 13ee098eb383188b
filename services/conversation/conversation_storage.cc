#include "services/conversation/conversation_storage.h"

#include "common/idempotency_storage.h"
#include "common/status_macros.h"

namespace chat::conversation {
namespace {

#define CONVERSATION_COLUMNS                                                 \
  "id::text, title, untitled, metadata::text, archived, pinned, "            \
  "message_count, (extract(epoch FROM last_message_at) * 1000000)::bigint, " \
  "(extract(epoch FROM created_at) * 1000000)::bigint, "                     \
  "(extract(epoch FROM updated_at) * 1000000)::bigint, "                     \
  "COALESCE(active_leaf_id::text, '')"

constexpr char kInsert[] = "conversation_insert";
constexpr char kInsertSql[] =
    "INSERT INTO conversations (user_id, id, title, untitled, metadata, "
    "created_at, updated_at) VALUES ($1::uuid, $2::uuid, $3, $4, $5::jsonb, "
    "$6::timestamptz, $6::timestamptz) RETURNING " CONVERSATION_COLUMNS;

constexpr char kGet[] = "conversation_get";
constexpr char kGetSql[] =
    "SELECT " CONVERSATION_COLUMNS
    " FROM conversations WHERE user_id = $1::uuid AND id = $2::uuid";

// Listing order: pinned first, then most recent activity; the id breaks
// ties. A page after another continues after its last row (the row
// comparison). One statement for each combination of a title filter and a
// page position, each with a plan of its own: as optional clauses of one
// statement (`$n IS NULL OR ...`), PostgreSQL's generic plan could not tell
// how many rows a page reads, and sorted all of the user's conversations
// instead of reading the first page from the index. The page is chosen in a
// subquery and its columns made outside it: when PostgreSQL does sort (a
// user with few conversations on scattered pages), it sorts the rows as
// stored, not after making the text of every column of every row. The
// ORDER BYs name the table's id column, not the output column `id` (its
// text), which the index does not give in order.
#define LIST_SELECT                     \
  "SELECT " CONVERSATION_COLUMNS        \
  " FROM (SELECT * FROM conversations " \
  "WHERE user_id = $1::uuid AND archived = $2 "
#define LIST_ORDER                                              \
  "ORDER BY pinned DESC, updated_at DESC, id DESC LIMIT $3) c " \
  "ORDER BY pinned DESC, updated_at DESC, c.id DESC"
// After an empty page read without a transaction (DbReader): whether the
// account still exists (the read's setting was made). One row, always.
constexpr char kAccountVisible[] = "conversation_account_visible";
constexpr char kAccountVisibleSql[] =
    "SELECT current_setting('app.user_id', true) IS NOT DISTINCT FROM "
    "$1::text";

constexpr char kListFirst[] = "conversation_list_first";
constexpr char kListFirstSql[] = LIST_SELECT LIST_ORDER;
constexpr char kListFirstTitled[] = "conversation_list_first_titled";
constexpr char kListFirstTitledSql[] =
    LIST_SELECT "AND strpos(lower(title), lower($4::text)) > 0 " LIST_ORDER;
constexpr char kListAfter[] = "conversation_list_after";
constexpr char kListAfterSql[] = LIST_SELECT
    "AND (pinned, updated_at, id) < ($4::boolean, $5::timestamptz, "
    "$6::uuid) " LIST_ORDER;
constexpr char kListAfterTitled[] = "conversation_list_after_titled";
constexpr char kListAfterTitledSql[] = LIST_SELECT
    "AND strpos(lower(title), lower($4::text)) > 0 "
    "AND (pinned, updated_at, id) < ($5::boolean, $6::timestamptz, "
    "$7::uuid) " LIST_ORDER;

constexpr char kUpdate[] = "conversation_update";
constexpr char kUpdateSql[] =
    "UPDATE conversations SET title = COALESCE($3, title), "
    "untitled = untitled AND $3 IS NULL, "
    "metadata = COALESCE($4::jsonb, metadata), archived = COALESCE($5, "
    "archived), "
    "pinned = COALESCE($6, pinned), updated_at = $7::timestamptz "
    "WHERE user_id = $1::uuid AND id = $2::uuid "
    "RETURNING " CONVERSATION_COLUMNS;

// The active branch passes through $3 and ends at the newest leaf under it
// (deploy/migrations/0005_conversation_trees.sql); NULL when $3 is no
// message of the conversation. A function that runs as its owner, so this
// role needs no rights on messages.
constexpr char kActivateBranch[] = "conversation_activate_branch";
constexpr char kActivateBranchSql[] =
    "SELECT activate_branch($1::uuid, $2::uuid, $3::uuid)::text";

constexpr char kDelete[] = "conversation_delete";
constexpr char kDeleteSql[] =
    "DELETE FROM conversations WHERE user_id = $1::uuid AND id = $2::uuid";

constexpr char kDeleteAll[] = "conversation_delete_all";
constexpr char kDeleteAllSql[] =
    "DELETE FROM conversations WHERE user_id = $1::uuid";

// Columns is ColumnReader or DbColumnReader.
template <typename Columns>
ConversationRecord FromColumns(Columns column) {
  ConversationRecord c;
  c.id = column.String();
  c.title = column.String();
  c.untitled = column.template As<bool>();
  c.metadata = MetadataFromJson(column.Text()).value_or(Metadata{});
  c.archived = column.template As<bool>();
  c.pinned = column.template As<bool>();
  c.message_count = column.template As<int64_t>();
  if (std::optional<int64_t> micros = column.template Optional<int64_t>()) {
    c.last_message_at = FromPgMicros(*micros);
  }
  c.created_at = FromPgMicros(column.template As<int64_t>());
  c.updated_at = FromPgMicros(column.template As<int64_t>());
  c.active_leaf_id = column.String();
  return c;
}

ConversationRecord FromRow(const pqxx::row& row) {
  return FromColumns(ColumnReader(row));
}

absl::Status NotFound() {
  return absl::NotFoundError("conversation not found");
}

std::optional<std::string> MetadataParam(
    const std::optional<Metadata>& metadata) {
  if (!metadata) return std::nullopt;
  return MetadataToJson(*metadata);
}

}  // namespace

std::vector<PreparedStatement> ConversationStorage::Statements() {
  return WithStatements(
      {
          {kInsert, kInsertSql},
          {kGet, kGetSql},
          {kListFirst, kListFirstSql},
          {kAccountVisible, kAccountVisibleSql},
          {kListFirstTitled, kListFirstTitledSql},
          {kListAfter, kListAfterSql},
          {kListAfterTitled, kListAfterTitledSql},
          {kUpdate, kUpdateSql},
          {kActivateBranch, kActivateBranchSql},
          {kDelete, kDeleteSql},
          {kDeleteAll, kDeleteAllSql},
      },
      IdempotencyStatements());
}

absl::StatusOr<ConversationRecord> ConversationStorage::Create(
    const std::string& user_id, const ConversationRecord& conversation,
    const std::optional<IdempotencyKey>& key) {
  return pool_->Transact<ConversationRecord>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<ConversationRecord> {
        if (key) {
          ASSIGN_OR_RETURN(
              IdempotencyClaim claim,
              ClaimIdempotencyKey(tx, user_id, *key, conversation.id,
                                  conversation.created_at));
          if (claim.replay) {
            pqxx::result rows =
                tx.exec_prepared(kGet, user_id, claim.resource_id);
            if (rows.empty()) return NotFound();
            return FromRow(rows[0]);
          }
        }
        return FromRow(tx.exec_prepared1(
            kInsert, user_id, conversation.id, conversation.title,
            conversation.untitled, MetadataToJson(conversation.metadata),
            PgTime(conversation.created_at)));
      });
}

absl::StatusOr<ConversationRecord> ConversationStorage::Get(
    const std::string& user_id, const std::string& id) {
  return pool_->Transact<ConversationRecord>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<ConversationRecord> {
        pqxx::result rows = tx.exec_prepared(kGet, user_id, id);
        if (rows.empty()) return NotFound();
        return FromRow(rows[0]);
      });
}

namespace {

// read(statement, filters...): the listing's statement for `query` and
// `after`, with the arguments that follow user_id, archived and limit.
template <typename Read>
auto ReadListing(const std::string& query,
                 const std::optional<ListPosition>& after, Read&& read) {
  if (!after) {
    return query.empty() ? read(kListFirst) : read(kListFirstTitled, query);
  }
  const std::string updated_at = PgTime(FromPgMicros(after->updated_at_micros));
  return query.empty() ? read(kListAfter, after->pinned, updated_at, after->id)
                       : read(kListAfterTitled, query, after->pinned,
                              updated_at, after->id);
}

}  // namespace

absl::StatusOr<std::vector<ConversationRecord>> ConversationStorage::List(
    const std::string& user_id, bool archived, const std::string& query,
    const std::optional<ListPosition>& after, int limit) {
  // Most pages have rows: one round trip. An empty one asks again in a
  // transaction, which tells "none" from an account that is gone.
  auto read = [&](const char* statement, const auto&... filters)
      -> absl::StatusOr<std::vector<ConversationRecord>> {
    ASSIGN_OR_RETURN(std::optional<pqxx::result> rows,
                     pool_->ReadRows(user_id, statement, user_id, archived,
                                     limit, filters...));
    if (!rows) {
      ASSIGN_OR_RETURN(
          rows, pool_->Transact<std::optional<pqxx::result>>(
                    user_id,
                    [&](pqxx::work& tx)
                        -> absl::StatusOr<std::optional<pqxx::result>> {
                      return tx.exec_prepared(statement, user_id, archived,
                                              limit, filters...);
                    }));
    }
    std::vector<ConversationRecord> page;
    page.reserve(rows->size());
    for (const pqxx::row& row : *rows) page.push_back(FromRow(row));
    return page;
  };
  return ReadListing(query, after, read);
}

void ConversationStorage::ListAsync(const std::string& user_id, bool archived,
                                    const std::string& query,
                                    const std::optional<ListPosition>& after,
                                    int limit, ListDone done) {
  if (reader_ == nullptr) {
    ConversationStore::ListAsync(user_id, archived, query, after, limit,
                                 std::move(done));
    return;
  }
  auto answer = [reader = reader_, user_id,
                 done = std::move(done)](DbReader::Rows rows) mutable {
    if (!rows.ok()) {
      std::move(done)(rows.status());
      return;
    }
    if (*rows) {
      std::vector<ConversationRecord> page;
      page.reserve((*rows)->size());
      for (int i = 0; i < (*rows)->size(); ++i) {
        page.push_back(FromColumns(DbColumnReader(**rows, i)));
      }
      std::move(done)(std::move(page));
      return;
    }
    // No rows: none to list, or no account.
    reader->Read(
        user_id, kAccountVisible,
        [done = std::move(done)](DbReader::Rows seen) mutable {
          if (!seen.ok()) {
            std::move(done)(seen.status());
          } else if (!*seen || !DbColumnReader(**seen, 0).As<bool>()) {
            std::move(done)(AccountGoneError());
          } else {
            std::move(done)(std::vector<ConversationRecord>());
          }
        },
        user_id);
  };
  ReadListing(query, after, [&](const char* statement, const auto&... filters) {
    reader_->Read(user_id, statement, std::move(answer), user_id, archived,
                  limit, filters...);
  });
}

absl::StatusOr<ConversationRecord> ConversationStorage::Update(
    const std::string& user_id, const std::string& id,
    const ConversationChange& change, absl::Time now) {
  return pool_->Transact<ConversationRecord>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<ConversationRecord> {
        // The conversation's row first, as every writer locks it.
        pqxx::result rows = tx.exec_prepared(
            kUpdate, user_id, id, change.title, MetadataParam(change.metadata),
            change.archived, change.pinned, PgTime(now));
        if (rows.empty()) return NotFound();
        ConversationRecord updated = FromRow(rows[0]);
        if (change.active_message_id) {
          const pqxx::row leaf = tx.exec_prepared1(kActivateBranch, user_id, id,
                                                   *change.active_message_id);
          // Not OK: Transact rolls the update back with it.
          if (leaf[0].is_null())
            return absl::NotFoundError("message not found");
          updated.active_leaf_id = leaf[0].as<std::string>();
        }
        return updated;
      });
}

absl::Status ConversationStorage::Delete(const std::string& user_id,
                                         const std::string& id) {
  return pool_->Transact(user_id, [&](pqxx::work& tx) -> absl::Status {
    if (tx.exec_prepared(kDelete, user_id, id).affected_rows() == 0)
      return NotFound();
    return absl::OkStatus();
  });
}

absl::Status ConversationStorage::DeleteAll(const std::string& user_id) {
  return pool_->Transact(user_id, [&](pqxx::work& tx) {
    tx.exec_prepared0(kDeleteAll, user_id);
    return absl::OkStatus();
  });
}

}  // namespace chat::conversation
