#include "services/message/search_storage.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace chat::message {
namespace {

#define NIL_UUID "'00000000-0000-0000-0000-000000000000'::uuid"

// One page of the caller's matches: $1 user, $2 the tsquery text
// (ToTsQuery), $3 the conversation or NULL, $4..$7 the position after which
// the page starts (rank, created_at, conversation, message; $4 NULL on the
// first page), $8 the page's size, $9 ts_headline's options.
//
// search_page (deploy/migrations/0012_search.sql) finds the user's entries
// with the query's words through the GIN index over (user_id,
// conversation_id, document), ranks them (ts_rank, the length-normalized form)
// and cuts the page in (rank, created_at, conversation_id, message_id) order,
// all descending. Only the page's rows then read their message and
// conversation, and get a headline: the first 20,000 characters of the text
// with its matches marked (a bound on the work per row; a match further in is
// found, but its snippet shows the start of the text).
constexpr char kSearch[] = "search_find";
constexpr char kSearchSql[] =
    "SELECT p.conversation_id::text, c.title, "
    "  CASE WHEN p.message_id = " NIL_UUID
    " THEN '' ELSE p.message_id::text END, "
    "  COALESCE(m.role, ''), "
    "  ts_headline('public.chat_search'::regconfig, chat_search_text(left("
    "    CASE WHEN p.message_id = " NIL_UUID
    " THEN c.title ELSE m.content END, 20000)), "
    "    chat_search_query($2), $9), "
    "  (extract(epoch FROM p.created_at) * 1000000)::bigint, p.rank "
    "FROM search_page($1::uuid, chat_search_query($2), $3::uuid, $4::real, "
    "  $5::timestamptz, $6::uuid, $7::uuid, $8::integer) p "
    "JOIN conversations c ON c.user_id = $1::uuid AND c.id = p.conversation_id "
    "LEFT JOIN messages m ON p.message_id <> " NIL_UUID
    "  AND m.user_id = $1::uuid AND m.conversation_id = p.conversation_id "
    "  AND m.id = p.message_id "
    "ORDER BY p.rank DESC, p.created_at DESC, p.conversation_id DESC, "
    "  p.message_id DESC";

constexpr char kConversationExists[] = "search_conversation_exists";
constexpr char kConversationExistsSql[] =
    "SELECT 1 FROM conversations WHERE user_id = $1::uuid AND id = $2::uuid";

// ts_headline's options: the whole text with every match marked
// (BuildSnippet cuts the snippet around the first). Its fragment modes
// would drop what the parser takes for HTML tags (`<vector>`, `<b>`),
// which a snippet must show, escaped.
std::string HeadlineOptions(const SearchSpec& spec) {
  return absl::StrCat("StartSel=", spec.start_marker,
                      ", StopSel=", spec.stop_marker, ", HighlightAll=true");
}

}  // namespace

std::vector<PreparedStatement> SearchStorage::Statements() {
  return {{kSearch, kSearchSql}, {kConversationExists, kConversationExistsSql}};
}

absl::StatusOr<std::vector<SearchHit>> SearchStorage::Search(
    const std::string& user_id, const SearchSpec& spec) {
  std::optional<std::string> conversation;
  if (!spec.conversation_id.empty()) conversation = spec.conversation_id;
  std::optional<std::string> rank, created_at, after_conversation, after_id;
  if (spec.after) {
    // %.9g writes a float that reads back as the same float.
    rank = absl::StrFormat("%.9g", spec.after->rank);
    created_at = PgTime(spec.after->created_at);
    after_conversation = spec.after->conversation_id;
    after_id = spec.after->message_id.empty()
                   ? "00000000-0000-0000-0000-000000000000"
                   : spec.after->message_id;
  }
  const std::string options = HeadlineOptions(spec);
  return pool_->Transact<std::vector<SearchHit>>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<std::vector<SearchHit>> {
        // A query whose words the parser drops (only punctuation) makes
        // PostgreSQL send a NOTICE; it answers nothing, which is all.
        tx.exec("SET LOCAL client_min_messages = warning");
        pqxx::result rows = tx.exec_prepared(
            kSearch, user_id, spec.tsquery, conversation, rank, created_at,
            after_conversation, after_id, spec.limit, options);
        std::vector<SearchHit> hits;
        hits.reserve(rows.size());
        for (const pqxx::row& row : rows) {
          hits.push_back({.conversation_id = row[0].as<std::string>(),
                          .conversation_title = row[1].as<std::string>(),
                          .message_id = row[2].as<std::string>(),
                          .role = row[3].as<std::string>(),
                          .headline = row[4].as<std::string>(""),
                          .created_at = FromPgMicros(row[5].as<int64_t>()),
                          .rank = row[6].as<float>()});
        }
        return hits;
      });
}

absl::StatusOr<bool> SearchStorage::ConversationExists(
    const std::string& user_id, const std::string& conversation_id) {
  return pool_->Transact<bool>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<bool> {
        return !tx.exec_prepared(kConversationExists, user_id, conversation_id)
                    .empty();
      });
}

}  // namespace chat::message
