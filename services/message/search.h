#ifndef CHAT_SERVICES_MESSAGE_SEARCH_H_
#define CHAT_SERVICES_MESSAGE_SEARCH_H_

// Full-text search of docs/api.md "Search": the query syntax, the snippet
// rules and keyset paging over the caller's messages and conversation
// titles. The matching itself happens in PostgreSQL
// (deploy/migrations/0012_search.sql); this is what decides what is asked
// and how the answer is shown.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace chat::message {

// One term of q: a word, a prefix* or a "quoted phrase" (its words in
// order, next to each other), optionally -excluded.
struct SearchTerm {
  std::vector<std::string> words;
  bool phrase = false;
  bool prefix = false;
  bool excluded = false;

  friend bool operator==(const SearchTerm&, const SearchTerm&) = default;
};

// At most this many characters (code points) of q.
inline constexpr size_t kMaxQueryChars = 1000;
// At most this many terms (a phrase is one).
inline constexpr size_t kMaxQueryTerms = 32;
// At most this many characters in a word: the database indexes a word
// (with its owner's tag, as UTF-8, lower-cased and without accents) only up
// to about 2,000 bytes (deploy/migrations/0014_search_scope.sql).
inline constexpr size_t kMaxWordChars = 200;
// A prefix* needs at least this many characters: shorter ones would match
// most of the vocabulary.
inline constexpr size_t kMinPrefixChars = 2;
// Snippets are at most this many characters, markup included.
inline constexpr size_t kMaxSnippetChars = 200;

// The terms of q. Terms are separated by white space; `"` opens a phrase
// that runs to the next `"` (or to the end); a `-` before a word or a phrase
// excludes it; a word ending in `*` is a prefix. Words without a letter or
// digit (lone punctuation) are dropped. INVALID_ARGUMENT with a violation on
// field "q" when q is not valid UTF-8 or holds NUL, is empty or longer than
// kMaxQueryChars, has no term to find (only exclusions), more than
// kMaxQueryTerms terms, a word longer than kMaxWordChars or a prefix shorter
// than kMinPrefixChars.
absl::StatusOr<std::vector<SearchTerm>> ParseSearchQuery(absl::string_view q);

// The terms as the text of a PostgreSQL tsquery in which every word is a
// single-quoted, escaped lexeme: `'a' & 'b':* & ('c' <-> 'd') & !'e'`. No
// character of the user's reaches the tsquery syntax unquoted; the
// database normalizes each quoted word (case, accents, scripts without
// spaces) as it does documents.
std::string ToTsQuery(const std::vector<SearchTerm>& terms);

// The snippet of `headline`, a text in which each match is enclosed in
// `start` and `stop` (ts_headline's StartSel and StopSel): white space runs
// become one space, U+FDD0 (the separator the database puts around the
// characters of scripts without spaces) goes, the content's <, > and & are
// escaped, and each match is wrapped in <mark> and </mark>. The result is at
// most `max_chars` characters with its markup and escapes, around the first
// match (an ellipsis "…" where text was cut off).
std::string BuildSnippet(absl::string_view headline, absl::string_view start,
                         absl::string_view stop,
                         size_t max_chars = kMaxSnippetChars);

// Where a window of results starts: below this entry in (created_at,
// conversation_id, message_id) order, all descending. Results come in
// windows of the `window_size` newest matches below the start, each window
// best first (docs/api.md "Search"); the first window starts at the newest.
struct SearchWindowStart {
  absl::Time created_at;
  std::string conversation_id;
  std::string message_id;  // "" for a title

  friend bool operator==(const SearchWindowStart&,
                         const SearchWindowStart&) = default;
};

// A match as the store finds it.
struct SearchHit {
  std::string conversation_id;
  std::string conversation_title;
  std::string message_id;  // "" for the title
  std::string role;        // "" for the title
  // The message's content (or the title) as ts_headline made it: each
  // match between the spec's markers.
  std::string headline;
  absl::Time created_at;
  float rank = 0;
  // The window it is in; nullopt for the first.
  std::optional<SearchWindowStart> window;
};

// Where a page ended: within a window, results come in (rank DESC,
// created_at DESC, conversation_id DESC, message_id DESC) order, the title
// of a conversation having the nil UUID as its message_id.
struct SearchPosition {
  std::optional<SearchWindowStart> window;  // nullopt: the first
  float rank = 0;
  absl::Time created_at;
  std::string conversation_id;
  std::string message_id;  // "" for a title
};

struct SearchSpec {
  std::string tsquery;          // ToTsQuery
  std::string conversation_id;  // "" for all of the user's
  std::optional<SearchPosition> after;
  int limit = 0;
  int window_size = 0;
  // What ts_headline encloses each match in.
  std::string start_marker;
  std::string stop_marker;
};

// What search needs of storage (services/message/search_storage.h).
class SearchStore {
 public:
  virtual ~SearchStore() = default;
  // Up to spec.limit of the user's matches after spec.after, in order,
  // in windows of spec.window_size.
  virtual absl::StatusOr<std::vector<SearchHit>> Search(
      const std::string& user_id, const SearchSpec& spec) = 0;
  virtual absl::StatusOr<bool> ConversationExists(
      const std::string& user_id, const std::string& conversation_id) = 0;
};

struct SearchQuery {
  std::string q;
  int page_size = 0;
  std::string page_token;
  std::string conversation_id;
};

struct SearchResult {
  std::string conversation_id;
  std::string conversation_title;
  std::string message_id;
  std::string role;
  std::string snippet;
  absl::Time created_at;
};

struct SearchPage {
  std::vector<SearchResult> results;
  std::string next_page_token;  // empty on the last page
};

// Matches ranked together, newest first: a query with no more matches is
// ranked as a whole; one with more (a word in a tenth of a long history)
// is ranked window by window, so that its cost does not grow with its
// number of matches.
inline constexpr int kSearchWindowSize = 1000;

class Search {
 public:
  explicit Search(SearchStore* store, int window_size = kSearchWindowSize)
      : store_(store), window_size_(window_size) {}

  // The caller's matches of query.q, best first. Every offending field is
  // an INVALID_ARGUMENT violation (q; page_size when negative; page_token
  // when not a token of this q and conversation; conversation_id when not
  // a UUID). A conversation_id that is not the caller's is NOT_FOUND.
  absl::StatusOr<SearchPage> Find(const std::string& user_id,
                                  const SearchQuery& query);

 private:
  SearchStore* store_;
  int window_size_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_SEARCH_H_
