#include "services/message/search.h"

#include <openssl/rand.h>

#include <array>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "chat/internal/page_token.pb.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/page_token.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace chat::message {
namespace {

constexpr int kDefaultPageSize = 20;
constexpr int kMaxPageSize = 100;
// U+FDD0 in UTF-8: what chat_search_text puts around the characters of
// scripts written without spaces.
constexpr absl::string_view kSeparator = "\xEF\xB7\x90";
constexpr absl::string_view kEllipsis = "\xE2\x80\xA6";  // …
constexpr absl::string_view kMarkOpen = "<mark>";
constexpr absl::string_view kMarkClose = "</mark>";

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

// A word worth searching for: one with a letter or a digit. Any character
// beyond ASCII counts as one; the database drops what its parser does not
// see as a word.
bool HasWordCharacter(absl::string_view word) {
  for (char c : word) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x80 || (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') ||
        (b >= 'A' && b <= 'Z')) {
      return true;
    }
  }
  return false;
}

// No-break space and ideographic space separate words as a space does.
std::string NormalizeSpaces(absl::string_view q) {
  return absl::StrReplaceAll(q, {{"\xC2\xA0", " "}, {"\xE3\x80\x80", " "}});
}

absl::Status QueryError(absl::string_view description) {
  FieldViolations violations;
  violations.Add("q", description);
  return violations.ToStatus();
}

// A single-quoted tsquery lexeme: inside quotes only ' and \ are special.
std::string QuoteLexeme(absl::string_view word) {
  return absl::StrCat(
      "'", absl::StrReplaceAll(word, {{"\\", "\\\\"}, {"'", "''"}}), "'");
}

std::string RandomMarker(absl::string_view kind) {
  std::array<unsigned char, 12> bytes;
  RAND_bytes(bytes.data(), bytes.size());
  return absl::StrCat(
      "zz", kind,
      absl::BytesToHexString(absl::string_view(
          reinterpret_cast<const char*>(bytes.data()), bytes.size())));
}

// One piece of a snippet: a code point of text, or a whole match.
struct Unit {
  std::string text;
  bool marked = false;
  size_t cost = 0;  // characters it takes in the snippet
};

size_t EscapedCost(absl::string_view text) {
  size_t cost = 0;
  while (!text.empty()) {
    const size_t len = std::max<size_t>(1, Utf8SequenceLength(text));
    const char c = text[0];
    cost += c == '<' || c == '>' ? 4 : c == '&' ? 5 : 1;
    text.remove_prefix(std::min(len, text.size()));
  }
  return cost;
}

std::string Escape(absl::string_view text) {
  return absl::StrReplaceAll(text,
                             {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}});
}

// `text` without the separator, each run of white space one space.
std::string Clean(absl::string_view text) {
  std::string out;
  bool space = false;
  const std::string plain = absl::StrReplaceAll(text, {{kSeparator, ""}});
  for (char c : plain) {
    if (IsSpace(c)) {
      space = true;
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  if (space) out.push_back(' ');
  return out;
}

void AddPlain(absl::string_view text, std::vector<Unit>& units) {
  while (!text.empty()) {
    const size_t len =
        std::min(std::max<size_t>(1, Utf8SequenceLength(text)), text.size());
    const absl::string_view cp = text.substr(0, len);
    text.remove_prefix(len);
    // One space between words, none at the start.
    if (cp == " " && (units.empty() || units.back().text == " ")) continue;
    units.push_back({std::string(cp), false, EscapedCost(cp)});
  }
}

// The first `budget` characters' worth of a match too long to show whole.
std::string Shorten(absl::string_view text, size_t budget) {
  std::string out;
  size_t used = 0;
  while (!text.empty()) {
    const size_t len =
        std::min(std::max<size_t>(1, Utf8SequenceLength(text)), text.size());
    const size_t cost = EscapedCost(text.substr(0, len));
    if (used + cost > budget) break;
    used += cost;
    absl::StrAppend(&out, text.substr(0, len));
    text.remove_prefix(len);
  }
  return out;
}

bool IsSpaceUnit(const Unit& unit) { return !unit.marked && unit.text == " "; }

// A search entry's key in a page token: a conversation, and a message or
// "" for its title.
bool IsEntryKey(const std::string& conversation_id,
                const std::string& message_id) {
  return IsUuid(conversation_id) && (message_id.empty() || IsUuid(message_id));
}

}  // namespace

absl::StatusOr<std::vector<SearchTerm>> ParseSearchQuery(absl::string_view q) {
  const std::optional<size_t> length = CountCodePoints(q);
  if (!length) return QueryError("must be valid UTF-8");
  if (q.find('\0') != absl::string_view::npos) {
    return QueryError("must not contain NUL");
  }
  if (*length == 0 || *length > kMaxQueryChars) {
    return QueryError(
        absl::StrCat("must be 1 to ", kMaxQueryChars, " characters long"));
  }
  const std::string text = NormalizeSpaces(q);
  std::vector<SearchTerm> terms;
  size_t i = 0;
  while (i < text.size()) {
    if (IsSpace(text[i])) {
      ++i;
      continue;
    }
    SearchTerm term;
    if (text[i] == '-' && i + 1 < text.size() && !IsSpace(text[i + 1])) {
      term.excluded = true;
      ++i;
    }
    if (text[i] == '"') {
      const size_t close = text.find('"', i + 1);
      const size_t end = close == std::string::npos ? text.size() : close;
      absl::string_view inside(text.data() + i + 1, end - i - 1);
      i = close == std::string::npos ? text.size() : close + 1;
      size_t w = 0;
      while (w < inside.size()) {
        if (IsSpace(inside[w])) {
          ++w;
          continue;
        }
        size_t e = w;
        while (e < inside.size() && !IsSpace(inside[e])) ++e;
        const absl::string_view word = inside.substr(w, e - w);
        if (HasWordCharacter(word)) term.words.emplace_back(word);
        w = e;
      }
      term.phrase = true;
    } else {
      size_t e = i;
      while (e < text.size() && !IsSpace(text[e]) && text[e] != '"') ++e;
      absl::string_view word(text.data() + i, e - i);
      i = e;
      while (!word.empty() && word.back() == '*') {
        word.remove_suffix(1);
        term.prefix = true;
      }
      if (HasWordCharacter(word)) {
        if (term.prefix &&
            CountCodePoints(word).value_or(0) < kMinPrefixChars) {
          return QueryError(absl::StrCat("a prefix* needs at least ",
                                         kMinPrefixChars, " characters"));
        }
        term.words.emplace_back(word);
      }
    }
    for (const std::string& word : term.words) {
      if (CountCodePoints(word).value_or(0) > kMaxWordChars) {
        return QueryError(absl::StrCat("words must be at most ", kMaxWordChars,
                                       " characters long"));
      }
    }
    if (!term.words.empty()) terms.push_back(std::move(term));
  }
  if (terms.size() > kMaxQueryTerms) {
    return QueryError(
        absl::StrCat("must have at most ", kMaxQueryTerms, " terms"));
  }
  bool positive = false;
  for (const SearchTerm& term : terms) positive = positive || !term.excluded;
  if (!positive) {
    return QueryError(
        "must have a word to find, not only -excluded words or punctuation");
  }
  return terms;
}

std::string ToTsQuery(const std::vector<SearchTerm>& terms) {
  std::vector<std::string> parts;
  for (const SearchTerm& term : terms) {
    std::vector<std::string> words;
    for (const std::string& word : term.words) {
      words.push_back(QuoteLexeme(word));
    }
    std::string part = absl::StrJoin(words, " <-> ");
    if (term.prefix) absl::StrAppend(&part, ":*");
    if (words.size() > 1) part = absl::StrCat("(", part, ")");
    if (term.excluded) part = absl::StrCat("!", part);
    parts.push_back(std::move(part));
  }
  return absl::StrJoin(parts, " & ");
}

std::string BuildSnippet(absl::string_view headline, absl::string_view start,
                         absl::string_view stop, size_t max_chars) {
  std::vector<Unit> units;
  while (!headline.empty()) {
    const size_t open =
        start.empty() ? absl::string_view::npos : headline.find(start);
    if (open == absl::string_view::npos) {
      AddPlain(Clean(headline), units);
      break;
    }
    AddPlain(Clean(headline.substr(0, open)), units);
    headline.remove_prefix(open + start.size());
    const size_t close = headline.find(stop);
    const absl::string_view match = headline.substr(0, close);
    std::string text = Clean(match);
    headline.remove_prefix(close == absl::string_view::npos
                               ? headline.size()
                               : close + stop.size());
    if (text.empty() || text == " ") continue;
    // Matches side by side (the characters of a word of a script without
    // spaces) are one mark.
    if (!units.empty() && units.back().marked) {
      absl::StrAppend(&units.back().text, text);
      units.back().cost += EscapedCost(text);
      continue;
    }
    const size_t cost =
        EscapedCost(text) + kMarkOpen.size() + kMarkClose.size();
    units.push_back({std::move(text), true, cost});
  }
  while (!units.empty() && IsSpaceUnit(units.back())) units.pop_back();

  const size_t n = units.size();
  size_t total = 0;
  for (const Unit& unit : units) total += unit.cost;
  size_t l = 0;
  size_t r = n;
  if (total > max_chars) {
    // Room for an ellipsis on each side.
    const size_t budget = max_chars >= 2 ? max_chars - 2 : 0;
    size_t first = 0;
    while (first < n && !units[first].marked) ++first;
    const bool has_match = first < n;
    if (!has_match) first = 0;
    Unit& anchor = units[first];
    if (anchor.cost > budget) {
      const size_t markup =
          anchor.marked ? kMarkOpen.size() + kMarkClose.size() : 0;
      anchor.text = Shorten(anchor.text, budget > markup ? budget - markup : 0);
      anchor.cost = EscapedCost(anchor.text) + markup;
    }
    l = first;
    r = first + 1;
    size_t used = anchor.cost;
    // A third of the room before the match, the rest after it, and what the
    // end of the text leaves over before it again.
    size_t left = has_match ? (budget - used) / 3 : 0;
    while (l > 0 && units[l - 1].cost <= left) {
      left -= units[l - 1].cost;
      used += units[l - 1].cost;
      --l;
    }
    while (r < n && used + units[r].cost <= budget) used += units[r++].cost;
    while (l > 0 && used + units[l - 1].cost <= budget) used += units[--l].cost;
    // Cut between words where the text allows it.
    if (l > 0 && !IsSpaceUnit(units[l - 1])) {
      size_t s = l;
      while (s < first && !IsSpaceUnit(units[s])) ++s;
      if (s < first) l = s + 1;
    }
    if (r < n && !IsSpaceUnit(units[r])) {
      size_t s = r;
      while (s > first + 1 && !IsSpaceUnit(units[s - 1])) --s;
      if (s > first + 1) r = s - 1;
    }
  }
  while (l < r && IsSpaceUnit(units[l])) ++l;
  while (r > l && IsSpaceUnit(units[r - 1])) --r;

  std::string out;
  if (l > 0) absl::StrAppend(&out, kEllipsis);
  for (size_t k = l; k < r; ++k) {
    if (units[k].marked) {
      absl::StrAppend(&out, kMarkOpen, Escape(units[k].text), kMarkClose);
    } else {
      absl::StrAppend(&out, Escape(units[k].text));
    }
  }
  if (r < n) absl::StrAppend(&out, kEllipsis);
  return out;
}

absl::StatusOr<SearchPage> Search::Find(const std::string& user_id,
                                        const SearchQuery& query) {
  FieldViolations violations;
  absl::StatusOr<std::vector<SearchTerm>> terms = ParseSearchQuery(query.q);
  if (!terms.ok()) {
    for (const FieldViolation& v : ViolationsOf(terms.status())) {
      violations.Add(v.field, v.description);
    }
  }
  absl::StatusOr<int> page_size =
      ResolvePageSize(query.page_size, kDefaultPageSize, kMaxPageSize);
  if (!page_size.ok()) violations.Add("page_size", "must not be negative");
  if (!query.conversation_id.empty() && !IsUuid(query.conversation_id)) {
    violations.Add("conversation_id",
                   "must be a conversation id, or empty for all of them");
  }
  std::optional<SearchPosition> after;
  if (!query.page_token.empty()) {
    chat::internal::SearchCursor cursor;
    absl::Status decoded = DecodePageToken(query.page_token, &cursor);
    if (decoded.ok() &&
        (cursor.query() != query.q ||
         cursor.conversation_id() != query.conversation_id ||
         !IsEntryKey(cursor.last_conversation_id(), cursor.last_message_id()) ||
         (cursor.has_window() && !IsEntryKey(cursor.window().conversation_id(),
                                             cursor.window().message_id())))) {
      decoded = ForeignPageToken();
    }
    if (decoded.ok()) {
      after = SearchPosition{
          .rank = cursor.rank(),
          .created_at = absl::FromUnixMicros(cursor.created_at_micros()),
          .conversation_id = cursor.last_conversation_id(),
          .message_id = cursor.last_message_id()};
      if (cursor.has_window()) {
        after->window = SearchWindowStart{
            .created_at =
                absl::FromUnixMicros(cursor.window().created_at_micros()),
            .conversation_id = cursor.window().conversation_id(),
            .message_id = cursor.window().message_id()};
      }
    } else {
      for (const FieldViolation& v : ViolationsOf(decoded)) {
        violations.Add(v.field, v.description);
      }
    }
  }
  RETURN_IF_ERROR(violations.ToStatus());

  SearchSpec spec{.tsquery = ToTsQuery(*terms),
                  .conversation_id = query.conversation_id,
                  .after = after,
                  // One more tells whether another page follows.
                  .limit = *page_size + 1,
                  .window_size = window_size_,
                  .start_marker = RandomMarker("s"),
                  .stop_marker = RandomMarker("e")};
  ASSIGN_OR_RETURN(std::vector<SearchHit> hits, store_->Search(user_id, spec));
  if (hits.empty() && !query.conversation_id.empty()) {
    // Another user's conversation is answered like a missing one.
    ASSIGN_OR_RETURN(bool exists, store_->ConversationExists(
                                      user_id, query.conversation_id));
    if (!exists) return absl::NotFoundError("conversation not found");
  }
  SearchPage page;
  if (hits.size() > static_cast<size_t>(*page_size)) {
    hits.resize(*page_size);
    const SearchHit& last = hits.back();
    chat::internal::SearchCursor cursor;
    cursor.set_query(query.q);
    cursor.set_conversation_id(query.conversation_id);
    cursor.set_rank(last.rank);
    cursor.set_created_at_micros(absl::ToUnixMicros(last.created_at));
    cursor.set_last_conversation_id(last.conversation_id);
    cursor.set_last_message_id(last.message_id);
    if (last.window) {
      chat::internal::SearchCursor::Window* window = cursor.mutable_window();
      window->set_created_at_micros(
          absl::ToUnixMicros(last.window->created_at));
      window->set_conversation_id(last.window->conversation_id);
      window->set_message_id(last.window->message_id);
    }
    page.next_page_token = EncodePageToken(cursor);
  }
  for (SearchHit& hit : hits) {
    page.results.push_back(
        {.conversation_id = std::move(hit.conversation_id),
         .conversation_title = std::move(hit.conversation_title),
         .message_id = std::move(hit.message_id),
         .role = std::move(hit.role),
         .snippet =
             BuildSnippet(hit.headline, spec.start_marker, spec.stop_marker),
         .created_at = hit.created_at});
  }
  return page;
}

}  // namespace chat::message
