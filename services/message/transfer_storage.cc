#include "services/message/transfer_storage.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "services/message/message_rows.h"

namespace chat::message {
namespace {

// One of the user's `$2` transfer slots, or no row when all are taken. The
// locks end with the transaction (and with its session, should the process
// die), so a slot is never leaked.
constexpr char kTakeSlot[] = "transfer_take_slot";
constexpr char kTakeSlotSql[] =
    "SELECT s FROM generate_series(0, $2::int - 1) s "
    "WHERE pg_try_advisory_xact_lock(hashtext('chat.transfer:' || $1), s) "
    "LIMIT 1";

// Every conversation of the user, oldest first. DECLARE takes no
// parameters: the user id is a UUID checked by DbPool::Transact, quoted all
// the same.
constexpr char kExportConversationsSql[] =
    "DECLARE transfer_conversations NO SCROLL CURSOR FOR "
    "SELECT c.id::text, c.title, c.untitled, c.metadata::text, c.archived, "
    "c.pinned, c.message_count, "
    "(extract(epoch FROM c.last_message_at) * 1000000)::bigint, "
    "COALESCE(c.active_leaf_id::text, ''), "
    "(extract(epoch FROM c.created_at) * 1000000)::bigint, "
    "(extract(epoch FROM c.updated_at) * 1000000)::bigint "
    "FROM conversations c WHERE c.user_id = ";
constexpr char kExportConversationsOrderSql[] = " ORDER BY c.created_at, c.id";

// The next page of a conversation's messages in creation order (a parent's
// seq is below its children's), by the primary key: no sort, and the cost
// of a page does not grow with the conversation.
constexpr char kExportMessages[] = "transfer_export_messages";
constexpr char kExportMessagesSql[] =
    "SELECT " MESSAGE_COLUMNS " FROM messages m" SIBLINGS
    "WHERE m.user_id = $1::uuid AND m.conversation_id = $2::uuid "
    "AND m.seq > $3 ORDER BY m.seq LIMIT $4";

constexpr char kInsertConversation[] = "transfer_insert_conversation";
constexpr char kInsertConversationSql[] =
    "INSERT INTO conversations (user_id, id, title, untitled, metadata, "
    "archived, pinned, message_count, last_seq, created_at, updated_at) "
    "VALUES ($1::uuid, $2::uuid, $3, $4, $5::jsonb, $6, $7, 0, 0, "
    "$8::timestamptz, $9::timestamptz) "
    "ON CONFLICT (user_id, id) DO NOTHING RETURNING 1";

// $3 is a JSON array of the messages, one object each (InsertJson). They
// start off the active branch; EndConversation puts its path on it.
constexpr char kInsertMessages[] = "transfer_insert_messages";
constexpr char kInsertMessagesSql[] =
    "INSERT INTO messages (user_id, conversation_id, seq, id, parent_id, "
    "active, role, content, status, model, metadata, created_at, updated_at) "
    "SELECT $1::uuid, $2::uuid, r.seq, r.id, COALESCE(r.parent_id, " NIL_UUID
    "), false, r.role, r.content, r.status, r.model, r.metadata, "
    "r.created_at, r.updated_at "
    "FROM jsonb_to_recordset($3::jsonb) AS r(seq bigint, id uuid, "
    "parent_id uuid, role text, content text, status text, model text, "
    "metadata jsonb, created_at timestamptz, updated_at timestamptz)";

constexpr char kEndConversation[] = "transfer_end_conversation";
constexpr char kEndConversationSql[] =
    "UPDATE conversations SET message_count = $3, last_seq = $3, "
    "last_message_at = $4::timestamptz, updated_at = $5::timestamptz "
    "WHERE user_id = $1::uuid AND id = $2::uuid";

// The active branch: the messages from the root to the leaf, computed by
// the import as it read them. (set_active_path walks up the tree one
// message at a time; on a conversation PostgreSQL has no statistics for
// yet, each step scanned the whole conversation: 0.8 s for 1,000.)
constexpr char kSetActivePath[] = "transfer_set_active_path";
constexpr char kSetActivePathSql[] =
    "WITH path AS (UPDATE messages SET active = true "
    "WHERE user_id = $1::uuid AND conversation_id = $2::uuid "
    "AND id = ANY ($3::uuid[]) RETURNING 1) "
    "UPDATE conversations SET active_leaf_id = $4::uuid "
    "WHERE user_id = $1::uuid AND id = $2::uuid "
    "AND (SELECT count(*) FROM path) = cardinality($3::uuid[])";

absl::Status TakeSlot(pqxx::work& tx, const std::string& user_id, int slots) {
  if (tx.exec_prepared(kTakeSlot, user_id, slots).empty()) {
    return ResourceExhaustedRetryAfter(
        absl::StrCat("at most ", slots,
                     " exports and imports of one user run at once; wait for "
                     "one to end"),
        absl::Seconds(5));
  }
  return absl::OkStatus();
}

absl::Status NotRepeatable(absl::string_view what) {
  return absl::UnavailableError(
      absl::StrCat("the database failed during the ", what, "; send it again"));
}

ConversationRecord ConversationFromRow(const pqxx::row& row) {
  ConversationRecord c;
  c.id = row[0].as<std::string>();
  c.title = row[1].as<std::string>();
  c.untitled = row[2].as<bool>();
  c.metadata = MetadataFromJson(row[3].as<std::string>()).value_or(Metadata{});
  c.archived = row[4].as<bool>();
  c.pinned = row[5].as<bool>();
  c.message_count = row[6].as<int64_t>();
  if (!row[7].is_null()) c.last_message_at = FromPgMicros(row[7].as<int64_t>());
  c.active_leaf_id = row[8].as<std::string>();
  c.created_at = FromPgMicros(row[9].as<int64_t>());
  c.updated_at = FromPgMicros(row[10].as<int64_t>());
  return c;
}

// The messages as kInsertMessagesSql reads them. Content was checked to be
// valid UTF-8 without NUL, so JsonQuote keeps it byte for byte.
std::string InsertJson(const std::vector<MessageRecord>& messages) {
  std::string json = "[";
  for (const MessageRecord& m : messages) {
    if (json.size() > 1) json += ',';
    absl::StrAppend(
        &json, "{\"seq\":", m.seq, ",\"id\":", JsonQuote(m.id),
        ",\"parent_id\":",
        m.parent_id.empty() ? std::string("null") : JsonQuote(m.parent_id),
        ",\"role\":", JsonQuote(RoleName(m.role)),
        ",\"content\":", JsonQuote(m.content),
        ",\"status\":", JsonQuote(StatusName(m.status)),
        ",\"model\":", JsonQuote(m.model),
        ",\"metadata\":", MetadataToJson(m.metadata),
        ",\"created_at\":", JsonQuote(PgTime(m.created_at)),
        ",\"updated_at\":", JsonQuote(PgTime(m.updated_at)), "}");
  }
  json += ']';
  return json;
}

class TransactionImportWriter final : public ImportWriter {
 public:
  TransactionImportWriter(pqxx::work& tx, const std::string& user_id)
      : tx_(tx), user_id_(user_id) {}

  absl::StatusOr<bool> Begin(const ConversationRecord& c) override {
    return !tx_.exec_prepared(kInsertConversation, user_id_, c.id, c.title,
                              c.untitled, MetadataToJson(c.metadata),
                              c.archived, c.pinned, PgTime(c.created_at),
                              PgTime(c.updated_at))
                .empty();
  }

  absl::Status Add(const std::vector<MessageRecord>& messages) override {
    if (messages.empty()) return absl::OkStatus();
    tx_.exec_prepared0(kInsertMessages, user_id_,
                       messages.front().conversation_id, InsertJson(messages));
    return absl::OkStatus();
  }

  absl::Status End(const ConversationRecord& c,
                   const std::vector<std::string>& active_path) override {
    std::optional<std::string> last_message_at;
    if (c.last_message_at) last_message_at = PgTime(*c.last_message_at);
    tx_.exec_prepared0(kEndConversation, user_id_, c.id, c.message_count,
                       last_message_at, PgTime(c.updated_at));
    if (active_path.empty()) return absl::OkStatus();
    if (tx_.exec_prepared(kSetActivePath, user_id_, c.id,
                          UuidArray(active_path), active_path.back())
            .affected_rows() != 1) {
      return absl::InternalError(
          "the active branch of an import is not stored");
    }
    return absl::OkStatus();
  }

 private:
  pqxx::work& tx_;
  const std::string& user_id_;
};

}  // namespace

std::vector<PreparedStatement> TransferStorage::Statements() {
  return {
      {kTakeSlot, kTakeSlotSql},
      {kExportMessages, kExportMessagesSql},
      {kInsertConversation, kInsertConversationSql},
      {kInsertMessages, kInsertMessagesSql},
      {kEndConversation, kEndConversationSql},
      {kSetActivePath, kSetActivePathSql},
  };
}

absl::Status TransferStorage::Export(const std::string& user_id, int slots,
                                     int batch, ExportSink& sink) {
  // What was sent cannot be taken back: a failure after the first chunk
  // ends the export instead of starting it again.
  bool started = false;
  return pool_->Transact(user_id, [&](pqxx::work& tx) -> absl::Status {
    if (started) return NotRepeatable("export");
    started = true;
    RETURN_IF_ERROR(TakeSlot(tx, user_id, slots));
    tx.exec0(absl::StrCat(kExportConversationsSql, tx.quote(user_id),
                          kExportConversationsOrderSql));
    const std::string fetch =
        absl::StrCat("FETCH ", batch, " FROM transfer_conversations");
    while (true) {
      pqxx::result conversations = tx.exec(fetch);
      if (conversations.empty()) return absl::OkStatus();
      for (const pqxx::row& row : conversations) {
        const ConversationRecord c = ConversationFromRow(row);
        if (!sink.Conversation(c)) return absl::OkStatus();
        int64_t after = 0;
        while (true) {
          pqxx::result rows =
              tx.exec_prepared(kExportMessages, user_id, c.id, after, batch);
          if (rows.empty()) break;
          std::vector<MessageRecord> messages;
          messages.reserve(rows.size());
          for (const pqxx::row& m : rows) messages.push_back(MessageFromRow(m));
          after = messages.back().seq;
          if (!sink.Messages(messages)) return absl::OkStatus();
          if (static_cast<int>(rows.size()) < batch) break;
        }
      }
    }
  });
}

absl::Status TransferStorage::Import(
    const std::string& user_id, int slots,
    const std::function<absl::Status(ImportWriter&)>& body) {
  // The items already read from the client cannot be read again.
  bool started = false;
  return pool_->Transact(user_id, [&](pqxx::work& tx) -> absl::Status {
    if (started) return NotRepeatable("import; nothing was stored");
    started = true;
    RETURN_IF_ERROR(TakeSlot(tx, user_id, slots));
    TransactionImportWriter writer(tx, user_id);
    return body(writer);
  });
}

}  // namespace chat::message
