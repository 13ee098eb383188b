#include "services/message/search.h"

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "chat/internal/page_token.pb.h"
#include "common/errors.h"
#include "common/page_token.h"
#include "common/status_matchers.h"
#include "common/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chat::message {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kUser[] = "0190a000-0000-7000-8000-000000000001";
constexpr char kConv[] = "0190a000-0000-7000-8000-0000000000c1";
constexpr char kStart[] = "<<S>>";
constexpr char kStop[] = "<<E>>";

std::vector<std::string> Fields(const absl::Status& status) {
  std::vector<std::string> fields;
  for (const FieldViolation& v : ViolationsOf(status)) {
    fields.push_back(v.field);
  }
  return fields;
}

size_t Chars(const std::string& text) {
  return CountCodePoints(text).value_or(99999);
}

SearchTerm Word(std::string w, bool prefix = false, bool excluded = false) {
  return {.words = {std::move(w)}, .prefix = prefix, .excluded = excluded};
}

// --- the query syntax ------------------------------------------------------

TEST(ParseSearchQueryTest, WordsPhrasesExclusionsAndPrefixes) {
  absl::StatusOr<std::vector<SearchTerm>> terms =
      ParseSearchQuery("  alpha \"quick brown\"  -beta  gam*  -\"no way\" ");
  ASSERT_THAT(terms, IsOk());
  EXPECT_THAT(*terms, ElementsAre(Word("alpha"),
                                  SearchTerm{.words = {"quick", "brown"},
                                             .phrase = true},
                                  Word("beta", false, true), Word("gam", true),
                                  SearchTerm{.words = {"no", "way"},
                                             .phrase = true,
                                             .excluded = true}));
}

TEST(ParseSearchQueryTest, UnclosedQuoteRunsToTheEnd) {
  absl::StatusOr<std::vector<SearchTerm>> terms =
      ParseSearchQuery("x \"open phrase");
  ASSERT_THAT(terms, IsOk());
  EXPECT_THAT(*terms,
              ElementsAre(Word("x"), SearchTerm{.words = {"open", "phrase"},
                                                .phrase = true}));
}

TEST(ParseSearchQueryTest, HyphenInsideAWordAndLonePunctuation) {
  absl::StatusOr<std::vector<SearchTerm>> terms =
      ParseSearchQuery("e-mail - ** !!! word");
  ASSERT_THAT(terms, IsOk());
  EXPECT_THAT(*terms, ElementsAre(Word("e-mail"), Word("word")));
}

TEST(ParseSearchQueryTest, AnyScriptAndWideSpaces) {
  // U+3000 and U+00A0 separate words like a space.
  absl::StatusOr<std::vector<SearchTerm>> terms =
      ParseSearchQuery("Привет\xE3\x80\x80東京*\xC2\xA0καλημέρα");
  ASSERT_THAT(terms, IsOk());
  EXPECT_THAT(*terms, ElementsAre(Word("Привет"), Word("東京", true),
                                  Word("καλημέρα")));
}

TEST(ParseSearchQueryTest, RejectsWhatCannotBeSearched) {
  for (const std::string& q :
       {std::string(""), std::string("   "), std::string("-alone"),
        std::string("-a -\"b c\""), std::string("!!! -x"),
        std::string(kMaxQueryChars + 1, 'a'), std::string("bad \xC3\x28"),
        std::string("nul\0here", 8), std::string("a*")}) {
    absl::StatusOr<std::vector<SearchTerm>> terms = ParseSearchQuery(q);
    EXPECT_THAT(terms, StatusIs(absl::StatusCode::kInvalidArgument)) << q;
    EXPECT_THAT(Fields(terms.status()), ElementsAre("q")) << q;
  }
}

TEST(ParseSearchQueryTest, TermLimit) {
  std::string q;
  for (size_t i = 0; i < kMaxQueryTerms; ++i) absl::StrAppend(&q, "w", i, " ");
  EXPECT_THAT(ParseSearchQuery(q), IsOk());
  EXPECT_THAT(ParseSearchQuery(absl::StrCat(q, "one-more")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseSearchQueryTest, ExactlyTheLongestQuery) {
  // 1,000 characters of two bytes each, in words of the longest length.
  std::string q;
  for (size_t i = 0; i < kMaxQueryChars; ++i) {
    q += (i + 1) % (kMaxWordChars + 1) == 0 ? " " : "\xC3\xA9";
  }
  ASSERT_EQ(CountCodePoints(q), kMaxQueryChars);
  EXPECT_THAT(ParseSearchQuery(q), IsOk());
}

TEST(ParseSearchQueryTest, WordsHaveAMaximumLength) {
  const std::string longest(kMaxWordChars, 'w');
  EXPECT_THAT(ParseSearchQuery(longest), IsOk());
  EXPECT_THAT(ParseSearchQuery("\"" + longest + " x\""), IsOk());
  for (const std::string& q : {longest + "w", "a \"b " + longest + "w\"",
                               "-" + longest + "w", longest + "w*"}) {
    absl::StatusOr<std::vector<SearchTerm>> terms = ParseSearchQuery(q);
    EXPECT_THAT(terms, StatusIs(absl::StatusCode::kInvalidArgument)) << q;
    EXPECT_THAT(Fields(terms.status()), ElementsAre("q"));
  }
}

TEST(ToTsQueryTest, QuotesEveryLexeme) {
  absl::StatusOr<std::vector<SearchTerm>> terms = ParseSearchQuery(
      "it's \"back\\slash a&b c|d !e f<->g h:* & |\" -x pre* ('a')");
  ASSERT_THAT(terms, IsOk());
  EXPECT_EQ(ToTsQuery(*terms),
            "'it''s' & ('back\\\\slash' <-> 'a&b' <-> 'c|d' <-> '!e' <-> "
            "'f<->g' <-> 'h:*') & !'x' & 'pre':* & '(''a'')'");
}

// --- snippets --------------------------------------------------------------

TEST(BuildSnippetTest, MarksMatchesAndEscapesTheRest) {
  EXPECT_EQ(BuildSnippet("a <script>&amp; <<S>>tag<<E>> b", kStart, kStop),
            "a &lt;script&gt;&amp;amp; <mark>tag</mark> b");
}

TEST(BuildSnippetTest, AMatchThatLooksLikeMarkupIsEscapedToo) {
  EXPECT_EQ(BuildSnippet("<<S>><b>&<<E>>", kStart, kStop),
            "<mark>&lt;b&gt;&amp;</mark>");
}

TEST(BuildSnippetTest, CollapsesWhiteSpaceAndDropsTheSeparator) {
  EXPECT_EQ(BuildSnippet("  one\n\n two\t\xEF\xB7\x90東\xEF\xB7\x90\xEF\xB7\x90"
                         "<<S>>\xEF\xB7\x90京\xEF\xB7\x90<<E>>  ",
                         kStart, kStop),
            "one two 東<mark>京</mark>");
  // Characters matched side by side are one mark.
  EXPECT_EQ(
      BuildSnippet("\xEF\xB7\x90<<S>>東<<E>>\xEF\xB7\x90\xEF\xB7\x90<<S>>京"
                   "<<E>>\xEF\xB7\x90\xEF\xB7\x90都\xEF\xB7\x90",
                   kStart, kStop),
      "<mark>東京</mark>都");
}

TEST(BuildSnippetTest, WithoutMarkersItIsTheTextItself) {
  EXPECT_EQ(BuildSnippet("plain text", kStart, kStop), "plain text");
  EXPECT_EQ(BuildSnippet("", kStart, kStop), "");
}

TEST(BuildSnippetTest, LongTextIsCutAroundTheFirstMatch) {
  std::string before, after;
  for (int i = 0; i < 60; ++i) absl::StrAppend(&before, "before", i, " ");
  for (int i = 0; i < 60; ++i) absl::StrAppend(&after, " after", i);
  const std::string snippet = BuildSnippet(
      absl::StrCat(before, "<<S>>needle<<E>>", after), kStart, kStop);
  EXPECT_LE(Chars(snippet), kMaxSnippetChars);
  EXPECT_GT(Chars(snippet), kMaxSnippetChars - 20);
  EXPECT_THAT(snippet, HasSubstr("<mark>needle</mark> after0 after1"));
  EXPECT_THAT(snippet, HasSubstr("before59 <mark>"));
  // Cut between words, with an ellipsis on each side.
  EXPECT_EQ(snippet.rfind("\xE2\x80\xA6", 0), 0u);
  EXPECT_EQ(snippet.substr(snippet.size() - 3), "\xE2\x80\xA6");
  EXPECT_THAT(snippet, HasSubstr("\xE2\x80\xA6"
                                 "before"));
}

TEST(BuildSnippetTest, CountsCharactersNotBytesWithEscapesAndMarkup) {
  // 400 Cyrillic letters (800 bytes) around a match, and many ampersands.
  std::string text;
  for (int i = 0; i < 200; ++i) text += "я";
  text += " <<S>>Я<<E>> ";
  for (int i = 0; i < 100; ++i) text += "& ";
  const std::string snippet = BuildSnippet(text, kStart, kStop);
  EXPECT_LE(Chars(snippet), kMaxSnippetChars);
  EXPECT_THAT(snippet, HasSubstr("<mark>Я</mark> &amp; &amp;"));
}

TEST(BuildSnippetTest, AMatchLongerThanTheSnippetIsShortened) {
  const std::string snippet = BuildSnippet(
      absl::StrCat("x <<S>>", std::string(500, 'm'), "<<E>> y"), kStart, kStop);
  EXPECT_LE(Chars(snippet), kMaxSnippetChars);
  EXPECT_THAT(snippet, HasSubstr("<mark>mmmm"));
  EXPECT_THAT(snippet, HasSubstr("</mark>"));
}

TEST(BuildSnippetTest, NoMatchShowsTheStart) {
  std::string text;
  for (int i = 0; i < 100; ++i) absl::StrAppend(&text, "word", i, " ");
  const std::string snippet = BuildSnippet(text, kStart, kStop);
  EXPECT_LE(Chars(snippet), kMaxSnippetChars);
  EXPECT_EQ(snippet.rfind("word0 word1", 0), 0u);
}

// --- Search: validation and paging over a store in memory -------------------

// Hits given by the test, in the store's order, paged as the SQL pages.
class InMemorySearchStore final : public SearchStore {
 public:
  std::vector<SearchHit> hits;
  std::vector<std::string> conversations;
  SearchSpec last_spec;

  absl::StatusOr<std::vector<SearchHit>> Search(
      const std::string& user_id, const SearchSpec& spec) override {
    last_spec = spec;
    std::vector<SearchHit> out;
    for (const SearchHit& hit : hits) {
      if (!spec.conversation_id.empty() &&
          hit.conversation_id != spec.conversation_id) {
        continue;
      }
      if (spec.after && Key(hit) >= Key(*spec.after)) continue;
      if (static_cast<int>(out.size()) == spec.limit) break;
      out.push_back(hit);
    }
    return out;
  }
  absl::StatusOr<bool> ConversationExists(
      const std::string& user_id, const std::string& conversation_id) override {
    return std::find(conversations.begin(), conversations.end(),
                     conversation_id) != conversations.end();
  }

 private:
  // Descending order: a later hit has a smaller key.
  template <typename T>
  static std::tuple<float, absl::Time, std::string, std::string> Key(
      const T& h) {
    return {h.rank, h.created_at, h.conversation_id, h.message_id};
  }
};

class SearchTest : public ::testing::Test {
 protected:
  InMemorySearchStore store_;
  Search search_{&store_};
};

TEST_F(SearchTest, EveryOffendingFieldAtOnce) {
  absl::StatusOr<SearchPage> page =
      search_.Find(kUser, {.q = "-only",
                           .page_size = -1,
                           .page_token = "%%%",
                           .conversation_id = "not-a-uuid"});
  EXPECT_THAT(page, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Fields(page.status()),
              ElementsAre("q", "page_size", "conversation_id", "page_token"));
}

TEST_F(SearchTest, UnknownConversationIsNotFound) {
  EXPECT_THAT(search_.Find(kUser, {.q = "x", .conversation_id = kConv}),
              StatusIs(absl::StatusCode::kNotFound));
  store_.conversations.push_back(kConv);
  absl::StatusOr<SearchPage> page =
      search_.Find(kUser, {.q = "x", .conversation_id = kConv});
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(page->results, IsEmpty());
}

TEST_F(SearchTest, PagesThroughEveryHitOnceWithTokensBoundToTheQuery) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  for (int i = 0; i < 7; ++i) {
    store_.hits.push_back({.conversation_id = kConv,
                           .conversation_title = "T",
                           .message_id = absl::StrCat(
                               "0190a000-0000-7000-8000-00000000000", 9 - i),
                           .role = "user",
                           .headline = absl::StrCat("hit <<x>> ", i),
                           .created_at = t0 - absl::Seconds(i / 2),
                           .rank = i < 3 ? 0.5f : 0.25f});
  }
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<SearchPage> page =
        search_.Find(kUser, {.q = "hit", .page_size = 3, .page_token = token});
    ASSERT_THAT(page, IsOk());
    EXPECT_LE(page->results.size(), 3u);
    for (const SearchResult& r : page->results) seen.push_back(r.message_id);
    token = page->next_page_token;
    ++pages;
    if (!token.empty()) {
      // A token of another search is refused.
      EXPECT_THAT(search_.Find(kUser, {.q = "other", .page_token = token}),
                  StatusIs(absl::StatusCode::kInvalidArgument));
      EXPECT_THAT(search_.Find(kUser, {.q = "hit",
                                       .page_token = token,
                                       .conversation_id = kConv}),
                  StatusIs(absl::StatusCode::kInvalidArgument));
    }
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 7u);
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(seen[i], store_.hits[i].message_id);
  }
  // The store was asked for a tsquery of quoted lexemes, one more than a
  // page, with markers nobody can guess.
  EXPECT_EQ(store_.last_spec.tsquery, "'hit'");
  EXPECT_EQ(store_.last_spec.limit, 4);
  EXPECT_GE(store_.last_spec.start_marker.size(), 20u);
  EXPECT_NE(store_.last_spec.start_marker, store_.last_spec.stop_marker);
}

TEST_F(SearchTest, TokensCarryTheWindowOfThePagesLastHit) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  const SearchWindowStart second{.created_at = t0 - absl::Hours(1),
                                 .conversation_id = kConv,
                                 .message_id = ""};
  for (int i = 0; i < 3; ++i) {
    store_.hits.push_back(
        {.conversation_id = kConv,
         .conversation_title = "T",
         .message_id = absl::StrCat("0190a000-0000-7000-8000-00000000000", i),
         .role = "user",
         .headline = "<<S>>w<<E>>",
         .created_at = t0 - absl::Hours(2) - absl::Seconds(i),
         .rank = 0.5f,
         .window = second});
  }
  absl::StatusOr<SearchPage> page =
      search_.Find(kUser, {.q = "w", .page_size = 2});
  ASSERT_THAT(page, IsOk());
  EXPECT_EQ(store_.last_spec.window_size, kSearchWindowSize);
  EXPECT_FALSE(store_.last_spec.after.has_value());
  ASSERT_FALSE(page->next_page_token.empty());
  ASSERT_THAT(search_.Find(kUser, {.q = "w",
                                   .page_size = 2,
                                   .page_token = page->next_page_token}),
              IsOk());
  ASSERT_TRUE(store_.last_spec.after.has_value());
  EXPECT_EQ(store_.last_spec.after->window, second);
  EXPECT_EQ(store_.last_spec.after->message_id, store_.hits[1].message_id);

  // A token whose window is not an entry's key is refused.
  chat::internal::SearchCursor cursor;
  cursor.set_query("w");
  cursor.set_last_conversation_id(kConv);
  cursor.mutable_window()->set_conversation_id("not-a-uuid");
  EXPECT_THAT(
      Fields(
          search_.Find(kUser, {.q = "w", .page_token = EncodePageToken(cursor)})
              .status()),
      ElementsAre("page_token"));
}

TEST_F(SearchTest, PageSizeDefaultsAndCaps) {
  ASSERT_THAT(search_.Find(kUser, {.q = "x"}), IsOk());
  EXPECT_EQ(store_.last_spec.limit, 21);
  ASSERT_THAT(search_.Find(kUser, {.q = "x", .page_size = 1000}), IsOk());
  EXPECT_EQ(store_.last_spec.limit, 101);
}

}  // namespace
}  // namespace chat::message
