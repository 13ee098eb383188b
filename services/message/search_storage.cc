#include "services/message/search_storage.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/message/message_rows.h"

namespace chat::message {
namespace {

// One page of the caller's matches: $1 user, $2 the tsquery text
// (ToTsQuery), $3 the conversation or NULL, $4 the window size, $5..$7 where
// the page's window starts (created_at, conversation, message; $5 NULL for
// the first window), $8..$11 the position in it after which the page starts
// (rank, created_at, conversation, message; $8 NULL from the window's
// start), $12 the page's size, $13 ts_headline's options.
//
// search_page (deploy/migrations/0014_search_scope.sql) finds the window of
// the user's newest matches through the GIN index over (conversation_id,
// document), whose words carry their owner's tag, or by walking the
// user's entries newest first, whichever costs less; ranks them (ts_rank,
// the length-normalized form) and cuts the page in (rank, created_at,
// conversation_id, message_id) order, all descending, going on to the next
// window when one ends. Only the page's rows then read their message and
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
    "    chat_search_query($2), $13), "
    "  (extract(epoch FROM p.created_at) * 1000000)::bigint, p.rank, "
    "  (extract(epoch FROM p.window_created_at) * 1000000)::bigint, "
    "  p.window_conversation_id::text, "
    "  CASE WHEN p.window_message_id = " NIL_UUID
    " THEN '' ELSE p.window_message_id::text END "
    "FROM search_page($1::uuid, chat_search_query($2), $3::uuid, $4::integer, "
    "  $5::timestamptz, $6::uuid, $7::uuid, $8::real, $9::timestamptz, "
    "  $10::uuid, $11::uuid, $12::integer) p "
    "JOIN conversations c ON c.user_id = $1::uuid AND c.id = p.conversation_id "
    "LEFT JOIN messages m ON p.message_id <> " NIL_UUID
    "  AND m.user_id = $1::uuid AND m.conversation_id = p.conversation_id "
    "  AND m.id = p.message_id "
    "ORDER BY p.window_created_at DESC NULLS FIRST, "
    "  p.window_conversation_id DESC, p.window_message_id DESC, "
    "  p.rank DESC, p.created_at DESC, p.conversation_id DESC, "
    "  p.message_id DESC";

constexpr char kConversationExists[] = "search_conversation_exists";
constexpr char kConversationExistsSql[] =
    "SELECT 1 FROM conversations WHERE user_id = $1::uuid AND id = $2::uuid";

// ts_headline's options: the whole text with every match marked
// (BuildSnippet cuts the snippet around the first). Its fragment modes
// would drop what the parser takes for HTML tags (`<vector>`, `<b>`),
// which a snippet must show, escaped.
// A title's entry has the nil UUID for its message.
std::string OrNilUuid(const std::string& message_id) {
  return message_id.empty() ? kNilUuid : message_id;
}

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
  std::optional<std::string> window_created_at, window_conversation, window_id,
      rank, created_at, after_conversation, after_id;
  if (spec.after && spec.after->window) {
    const SearchWindowStart& window = *spec.after->window;
    window_created_at = PgTime(window.created_at);
    window_conversation = window.conversation_id;
    window_id = OrNilUuid(window.message_id);
  }
  if (spec.after) {
    // %.9g writes a float that reads back as the same float.
    rank = absl::StrFormat("%.9g", spec.after->rank);
    created_at = PgTime(spec.after->created_at);
    after_conversation = spec.after->conversation_id;
    after_id = OrNilUuid(spec.after->message_id);
  }
  const std::string options = HeadlineOptions(spec);
  return pool_->Transact<std::vector<SearchHit>>(
      user_id, [&](pqxx::work& tx) -> absl::StatusOr<std::vector<SearchHit>> {
        // A query whose words the parser drops (only punctuation) makes
        // PostgreSQL send a NOTICE; it answers nothing, which is all.
        tx.exec("SET LOCAL client_min_messages = warning");
        pqxx::result rows = tx.exec_prepared(
            kSearch, user_id, spec.tsquery, conversation, spec.window_size,
            window_created_at, window_conversation, window_id, rank, created_at,
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
          if (!row[7].is_null()) {
            hits.back().window = SearchWindowStart{
                .created_at = FromPgMicros(row[7].as<int64_t>()),
                .conversation_id = row[8].as<std::string>(),
                .message_id = row[9].as<std::string>()};
          }
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
