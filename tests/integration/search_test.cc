// Full-text search against the real PostgreSQL of TEST_DATABASE_URL
// (deploy/migrations/0012_search.sql, services/message/search_storage.h):
// every query form, snippets, isolation between users, results after edit
// and delete, paging. Messages are written through the message service's
// own domain and storage, so the triggers see what production writes.
// Skipped without TEST_DATABASE_URL.

#include "services/message/search.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/status_matchers.h"
#include "common/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "services/message/message_storage.h"
#include "services/message/messages.h"
#include "services/message/search_storage.h"
#include "tests/integration/database_test.h"
#include "tests/integration/test_database.h"

namespace chat::message {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

constexpr char kAlice[] = "0190f3a0-0000-7000-8000-00000000a11c";
constexpr char kBob[] = "0190f3a0-0000-7000-8000-000000000b0b";

class SearchIntegrationTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    db_->AddUser(kAlice, "alice");
    db_->AddUser(kBob, "bob");
    pool_ = DbPool::Create(
        {.url = db_->RoleUrl("chat_message"),
         .size = 2,
         .statements = WithStatements(MessageStorage::Statements(),
                                      SearchStorage::Statements())});
    messages_store_ = std::make_unique<MessageStorage>(pool_.get());
    messages_ = std::make_unique<Messages>(messages_store_.get(), &clock_);
    search_store_ = std::make_unique<SearchStorage>(pool_.get());
    search_ = std::make_unique<Search>(search_store_.get());
  }

  void Admin(const std::string& sql) {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    tx.exec(sql);
    tx.commit();
  }

  // A conversation of `user` (as the conversation service makes one).
  std::string Conversation(const char* user, const std::string& title) {
    const std::string id = NewUuidV7();
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    tx.exec_params(
        "INSERT INTO conversations (user_id, id, title, untitled, created_at, "
        "updated_at) VALUES ($1::uuid, $2::uuid, $3, false, now(), now())",
        std::string(user), id, title);
    tx.commit();
    return id;
  }

  std::string Post(const char* user, const std::string& conversation,
                   const std::string& content, Role role = Role::kUser) {
    absl::StatusOr<MessageRecord> m = messages_->Create(
        user, conversation, {.role = role, .content = content}, "");
    EXPECT_THAT(m, IsOk());
    return m.ok() ? m->id : "";
  }

  absl::StatusOr<SearchPage> Find(const char* user, const std::string& q,
                                  const std::string& conversation = "",
                                  int page_size = 0,
                                  const std::string& token = "") {
    return search_->Find(user, {.q = q,
                                .page_size = page_size,
                                .page_token = token,
                                .conversation_id = conversation});
  }

  // The message ids (or "title:<conversation>") that `q` finds for `user`.
  std::vector<std::string> Ids(const char* user, const std::string& q,
                               const std::string& conversation = "") {
    absl::StatusOr<SearchPage> page = Find(user, q, conversation, 100);
    EXPECT_THAT(page, IsOk()) << q;
    std::vector<std::string> ids;
    if (!page.ok()) return ids;
    for (const SearchResult& r : page->results) {
      ids.push_back(r.message_id.empty()
                        ? absl::StrCat("title:", r.conversation_id)
                        : r.message_id);
    }
    return ids;
  }

  std::string Snippet(const char* user, const std::string& q) {
    absl::StatusOr<SearchPage> page = Find(user, q);
    EXPECT_THAT(page, IsOk());
    if (!page.ok() || page->results.empty()) return "<none>";
    return page->results[0].snippet;
  }

  SystemClock clock_;
  std::unique_ptr<DbPool> pool_;
  std::unique_ptr<MessageStorage> messages_store_;
  std::unique_ptr<Messages> messages_;
  std::unique_ptr<SearchStorage> search_store_;
  std::unique_ptr<Search> search_;
};

TEST_F(SearchIntegrationTest, WordsPhrasesExclusionsAndPrefixes) {
  const std::string c = Conversation(kAlice, "Animals");
  const std::string fox = Post(kAlice, c, "The quick brown fox jumps");
  const std::string thinking = Post(kAlice, c, "Quick thinking helps");
  const std::string bread =
      Post(kAlice, c, "brown bread, baked", Role::kAssistant);

  // Every word must match, in any order.
  EXPECT_THAT(Ids(kAlice, "quick brown"), ElementsAre(fox));
  EXPECT_THAT(Ids(kAlice, "brown quick"), ElementsAre(fox));
  EXPECT_THAT(Ids(kAlice, "brown"), UnorderedElementsAre(fox, bread));
  // A phrase: its words next to each other, in order.
  EXPECT_THAT(Ids(kAlice, "\"brown fox\""), ElementsAre(fox));
  EXPECT_THAT(Ids(kAlice, "\"fox brown\""), IsEmpty());
  EXPECT_THAT(Ids(kAlice, "\"quick fox\""), IsEmpty());
  // Exclusions, of words and of phrases.
  EXPECT_THAT(Ids(kAlice, "quick -fox"), ElementsAre(thinking));
  EXPECT_THAT(Ids(kAlice, "brown -\"brown fox\""), ElementsAre(bread));
  // Prefixes.
  EXPECT_THAT(Ids(kAlice, "thin*"), ElementsAre(thinking));
  EXPECT_THAT(Ids(kAlice, "bak* bro*"), ElementsAre(bread));
  EXPECT_THAT(Ids(kAlice, "thin"), IsEmpty());
  // The role of a hit is the message's.
  absl::StatusOr<SearchPage> page = Find(kAlice, "bread");
  ASSERT_THAT(page, IsOk());
  ASSERT_EQ(page->results.size(), 1u);
  EXPECT_EQ(page->results[0].role, "assistant");
  EXPECT_EQ(page->results[0].conversation_title, "Animals");
  EXPECT_EQ(page->results[0].conversation_id, c);
  // Nothing but punctuation around words is searched for; characters the
  // tsquery syntax treats specially are plain text.
  EXPECT_THAT(Ids(kAlice, "fox! & | <-> ( ' \\"), ElementsAre(fox));
  EXPECT_THAT(Ids(kAlice, "«»"), IsEmpty());
  EXPECT_THAT(Ids(kAlice, "«» -fox"), IsEmpty());
}

TEST_F(SearchIntegrationTest, CaseAndAccentsDoNotMatter) {
  const std::string c = Conversation(kAlice, "Desserts");
  const std::string creme =
      Post(kAlice, c, "Crème Brûlée at the CAFÉ, naïvely");
  EXPECT_THAT(Ids(kAlice, "creme brulee"), ElementsAre(creme));
  EXPECT_THAT(Ids(kAlice, "CRÈME cafe"), ElementsAre(creme));
  EXPECT_THAT(Ids(kAlice, "Café"), ElementsAre(creme));
  EXPECT_THAT(Ids(kAlice, "\"brûlée at the café\""), ElementsAre(creme));
  EXPECT_THAT(Ids(kAlice, "naive*"), ElementsAre(creme));
  EXPECT_EQ(Snippet(kAlice, "creme"),
            "<mark>Crème</mark> Brûlée at the CAFÉ, naïvely");
}

TEST_F(SearchIntegrationTest, AnyScript) {
  const std::string c = Conversation(kAlice, "Scripts");
  const std::string ru = Post(kAlice, c, "Привет, МИР! Ёлка стоит.");
  const std::string el = Post(kAlice, c, "Καλημέρα ΚΌΣΜΕ");
  const std::string ja = Post(kAlice, c, "私は東京都に住んでいます。");
  const std::string zh = Post(kAlice, c, "我们明天去北京大学");
  const std::string ko = Post(kAlice, c, "학교에 갑니다");
  // Cyrillic and Greek: case and accents (ё, tonos) folded.
  EXPECT_THAT(Ids(kAlice, "мир"), ElementsAre(ru));
  EXPECT_THAT(Ids(kAlice, "привет елка"), ElementsAre(ru));
  EXPECT_THAT(Ids(kAlice, "καλημερα κοσμε"), ElementsAre(el));
  EXPECT_THAT(Ids(kAlice, "ΚΑΛΗ*"), ElementsAre(el));
  // Scripts without spaces: any run of characters of the text.
  EXPECT_THAT(Ids(kAlice, "東京"), ElementsAre(ja));
  EXPECT_THAT(Ids(kAlice, "住んで"), ElementsAre(ja));
  EXPECT_THAT(Ids(kAlice, "京東"), IsEmpty());
  EXPECT_THAT(Ids(kAlice, "北京 大学"), ElementsAre(zh));
  EXPECT_THAT(Ids(kAlice, "北京 -东京"), ElementsAre(zh));
  EXPECT_THAT(Ids(kAlice, "학교"), ElementsAre(ko));
  EXPECT_EQ(Snippet(kAlice, "東京"), "私は<mark>東京</mark>都に住んでいます。");
  EXPECT_EQ(Snippet(kAlice, "мир"), "Привет, <mark>МИР</mark>! Ёлка стоит.");
}

TEST_F(SearchIntegrationTest, SnippetsMarkMatchesAndEscapeTheContent) {
  const std::string c = Conversation(kAlice, "Security");
  Post(kAlice, c, "<script>alert('x')</script> & <b>needle</b> &amp; more");
  const std::string snippet = Snippet(kAlice, "needle");
  EXPECT_EQ(snippet,
            "&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;<mark>"
            "needle</mark>&lt;/b&gt; &amp;amp; more");

  // A long message: at most 200 characters around the match.
  std::string long_text;
  for (int i = 0; i < 300; ++i) absl::StrAppend(&long_text, "filler", i, " ");
  absl::StrAppend(&long_text, "haystack target here");
  for (int i = 0; i < 300; ++i) absl::StrAppend(&long_text, " tail", i);
  Post(kAlice, c, long_text);
  const std::string cut = Snippet(kAlice, "target");
  EXPECT_LE(CountCodePoints(cut).value_or(999), 200u);
  EXPECT_THAT(cut, HasSubstr("haystack <mark>target</mark> here"));
  EXPECT_THAT(cut, Not(HasSubstr("filler0 ")));
}

TEST_F(SearchIntegrationTest, TitlesAreFoundAndRankFirst) {
  const std::string trip = Conversation(kAlice, "Vacation <planning>");
  const std::string other = Conversation(kAlice, "Misc");
  const std::string m = Post(kAlice, other, "my vacation photos");
  absl::StatusOr<SearchPage> page = Find(kAlice, "vacation");
  ASSERT_THAT(page, IsOk());
  ASSERT_EQ(page->results.size(), 2u);
  EXPECT_EQ(page->results[0].conversation_id, trip);
  EXPECT_EQ(page->results[0].message_id, "");
  EXPECT_EQ(page->results[0].role, "");
  EXPECT_EQ(page->results[0].conversation_title, "Vacation <planning>");
  EXPECT_EQ(page->results[0].snippet, "<mark>Vacation</mark> &lt;planning&gt;");
  EXPECT_EQ(page->results[1].message_id, m);

  // A renamed conversation is found by its new title only.
  Admin("UPDATE conversations SET title = 'Holiday ideas' WHERE id = '" + trip +
        "'");
  EXPECT_THAT(Ids(kAlice, "vacation"), ElementsAre(m));
  EXPECT_THAT(Ids(kAlice, "holiday"), ElementsAre("title:" + trip));
  // A deleted conversation takes its title and messages along.
  Admin("DELETE FROM conversations WHERE id = '" + other + "'");
  EXPECT_THAT(Ids(kAlice, "vacation"), IsEmpty());
}

TEST_F(SearchIntegrationTest, AnotherUsersWordsNeverMatch) {
  const std::string mine = Conversation(kAlice, "Mine");
  const std::string theirs = Conversation(kBob, "Theirs secretword");
  const std::string bob = Post(kBob, theirs, "the secretword of bob");
  Post(kAlice, mine, "nothing to see");
  EXPECT_THAT(Ids(kAlice, "secretword"), IsEmpty());
  EXPECT_THAT(Ids(kAlice, "secret*"), IsEmpty());
  EXPECT_THAT(Ids(kBob, "secretword"),
              UnorderedElementsAre(bob, "title:" + theirs));
  // Not through Bob's conversation either: it is not found, like a missing
  // one.
  EXPECT_THAT(Find(kAlice, "secretword", theirs),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Find(kAlice, "nothing", NewUuidV7()),
              StatusIs(absl::StatusCode::kNotFound));
  // Within one's own conversation: only its messages.
  EXPECT_THAT(Ids(kBob, "bob", theirs), ElementsAre(bob));
  const std::string elsewhere = Conversation(kBob, "Elsewhere");
  Post(kBob, elsewhere, "bob again");
  EXPECT_THAT(Ids(kBob, "bob", theirs), ElementsAre(bob));
  EXPECT_THAT(Ids(kBob, "bob"), ::testing::SizeIs(2));
  // The database's own walls: search_page answers only the transaction's
  // user, and the message role cannot read the table itself.
  {
    pqxx::connection role(db_->RoleUrl("chat_message"));
    pqxx::work tx(role);
    tx.exec_params("SELECT set_config('app.user_id', $1, true)",
                   std::string(kAlice));
    const char* count =
        "SELECT count(*) FROM search_page($1::uuid, chat_search_query($2), "
        "NULL, 1000, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 10)";
    EXPECT_EQ(tx.exec_params(count, std::string(kBob), "'secretword'")[0][0]
                  .as<int>(),
              0);
    EXPECT_EQ(
        tx.exec_params(count, std::string(kAlice), "'nothing'")[0][0].as<int>(),
        1);
    EXPECT_THROW(tx.exec("SELECT count(*) FROM search_entries"),
                 pqxx::insufficient_privilege);
  }
  // An own conversation without a match is an empty page, not 404.
  absl::StatusOr<SearchPage> none = Find(kBob, "absent", elsewhere);
  ASSERT_THAT(none, IsOk());
  EXPECT_THAT(none->results, IsEmpty());
}

TEST_F(SearchIntegrationTest, ResultsFollowEditsAndDeletes) {
  const std::string c = Conversation(kAlice, "Edits");
  const std::string id = Post(kAlice, c, "original wording");
  const std::string child = Post(kAlice, c, "a reply below it");
  EXPECT_THAT(Ids(kAlice, "original"), ElementsAre(id));

  ASSERT_THAT(messages_->Update(kAlice, c, id,
                                {.content = std::string("revised text")}),
              IsOk());
  EXPECT_THAT(Ids(kAlice, "original"), IsEmpty());
  EXPECT_THAT(Ids(kAlice, "revised"), ElementsAre(id));
  // Metadata alone changes nothing of the index.
  ASSERT_THAT(
      messages_->Update(kAlice, c, id, {.metadata = Metadata{{"k", "v"}}}),
      IsOk());
  EXPECT_THAT(Ids(kAlice, "revised"), ElementsAre(id));

  // Deleting a message deletes its subtree, and both from the index.
  ASSERT_THAT(messages_->Delete(kAlice, c, id), IsOk());
  EXPECT_THAT(Ids(kAlice, "revised"), IsEmpty());
  EXPECT_THAT(Ids(kAlice, "reply"), IsEmpty());

  Post(kAlice, c, "cleared soon");
  EXPECT_THAT(Ids(kAlice, "cleared"), ::testing::SizeIs(1));
  ASSERT_THAT(messages_->Clear(kAlice, c), IsOk());
  EXPECT_THAT(Ids(kAlice, "cleared"), IsEmpty());
  // The title stays.
  EXPECT_THAT(Ids(kAlice, "edits"), ElementsAre("title:" + c));
  (void)child;
}

TEST_F(SearchIntegrationTest, ForkedMessagesAreFound) {
  const std::string c = Conversation(kAlice, "Source");
  const std::string id = Post(kAlice, c, "forkable words");
  absl::StatusOr<ForkedConversation> fork =
      messages_->Fork(kAlice, c, id, std::string("Forked"));
  ASSERT_THAT(fork, IsOk());
  absl::StatusOr<SearchPage> page = Find(kAlice, "forkable");
  ASSERT_THAT(page, IsOk());
  std::set<std::string> conversations;
  for (const SearchResult& r : page->results) {
    conversations.insert(r.conversation_id);
  }
  EXPECT_THAT(conversations, UnorderedElementsAre(c, fork->id));
}

TEST_F(SearchIntegrationTest, PagesHoldEveryMatchOnceBestFirst) {
  const std::string c = Conversation(kAlice, "Paging");
  std::set<std::string> posted;
  // Three strong matches (the word three times in a short text) among many
  // weak ones, posted first.
  for (int i = 0; i < 22; ++i) {
    posted.insert(Post(kAlice, c,
                       absl::StrCat("pageword number ", i,
                                    " with a few more words around it")));
  }
  std::vector<std::string> strong;
  for (int i = 0; i < 3; ++i) {
    strong.push_back(Post(kAlice, c, "pageword pageword pageword"));
    posted.insert(strong.back());
  }
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<SearchPage> page = Find(kAlice, "pageword", "", 10, token);
    ASSERT_THAT(page, IsOk());
    for (const SearchResult& r : page->results) seen.push_back(r.message_id);
    if (pages == 0) {
      ASSERT_EQ(page->results.size(), 10u);
      // Best first; newer first among equals.
      EXPECT_THAT(std::vector<std::string>(seen.begin(), seen.begin() + 3),
                  ElementsAre(strong[2], strong[1], strong[0]));
      // The token belongs to this search only.
      ASSERT_FALSE(page->next_page_token.empty());
      EXPECT_THAT(Find(kAlice, "pageword other", "", 10, page->next_page_token),
                  StatusIs(absl::StatusCode::kInvalidArgument));
      EXPECT_THAT(Find(kAlice, "pageword", c, 10, page->next_page_token),
                  StatusIs(absl::StatusCode::kInvalidArgument));
      EXPECT_THAT(
          Find(kAlice, "pageword", "", 10, page->next_page_token.substr(1)),
          StatusIs(absl::StatusCode::kInvalidArgument));
    }
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen.size(), 25u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), posted);
}

TEST_F(SearchIntegrationTest, ManyMatchesComeInWindowsOfTheNewest) {
  // Windows of 4: the 4 newest matches best first, then the 4 before them
  // best first, then the rest.
  Search search(search_store_.get(), 4);
  const std::string c = Conversation(kAlice, "Windows");
  std::vector<std::string> posted;  // oldest first
  std::set<std::string> strong;
  for (int i = 0; i < 10; ++i) {
    const bool is_strong = i % 3 == 0;
    posted.push_back(Post(kAlice, c,
                          is_strong ? "windowword windowword windowword"
                                    : absl::StrCat("windowword number ", i,
                                                   " among other words")));
    if (is_strong) strong.insert(posted.back());
  }
  // Each window: its strong matches newest first, then its weak ones.
  std::vector<std::string> want;
  for (int end = 10; end > 0; end -= 4) {
    const int begin = std::max(0, end - 4);
    for (bool pass_strong : {true, false}) {
      for (int i = end - 1; i >= begin; --i) {
        if (strong.contains(posted[i]) == pass_strong) {
          want.push_back(posted[i]);
        }
      }
    }
  }
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<SearchPage> page = search.Find(
        kAlice, {.q = "windowword", .page_size = 3, .page_token = token});
    ASSERT_THAT(page, IsOk());
    for (const SearchResult& r : page->results) seen.push_back(r.message_id);
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(seen, want);
  EXPECT_EQ(pages, 4);

  // Both ways of finding a window give the same rows, in windows of 1, 4
  // and 100 (one window for all).
  pqxx::connection role(db_->RoleUrl("chat_message"));
  for (int window : {1, 4, 100}) {
    std::vector<std::vector<std::string>> results;
    for (const char* plan : {"recent", "index"}) {
      pqxx::work tx(role);
      tx.exec_params("SELECT set_config('app.user_id', $1, true)",
                     std::string(kAlice));
      std::vector<std::string> ids;
      for (const pqxx::row& row : tx.exec_params(
               "SELECT message_id::text FROM search_page($1::uuid, "
               "chat_search_query($2), NULL, $3, NULL, NULL, NULL, NULL, "
               "NULL, NULL, NULL, 100, $4)",
               std::string(kAlice), "'windowword'", window,
               std::string(plan))) {
        ids.push_back(row[0].as<std::string>());
      }
      results.push_back(ids);
    }
    EXPECT_EQ(results[0], results[1]) << "window " << window;
    EXPECT_EQ(results[0].size(), 10u) << "window " << window;
  }
}

TEST_F(SearchIntegrationTest, LongWordsNeverFailAWrite) {
  const std::string c = Conversation(kAlice, "Long words");
  // Longer than the longest lexeme with its tag, shorter than the parser's
  // limit; then the same with four-byte characters.
  std::string wide;
  for (int i = 0; i < 510; ++i) wide += "\xF0\x9D\x94\xB8";  // U+1D538
  const std::string m1 = Post(kAlice, c, std::string(2040, 'a') + " tailword");
  const std::string m2 = Post(kAlice, c, wide + " tailword");
  EXPECT_THAT(Ids(kAlice, "tailword"), UnorderedElementsAre(m1, m2));
  // The longest word a query may hold, of the widest characters.
  std::string query;
  for (size_t i = 0; i < kMaxWordChars; ++i) query += "\xF0\x9D\x94\xB8";
  EXPECT_THAT(Find(kAlice, query), IsOk());
  EXPECT_THAT(Find(kAlice, query + "*"), IsOk());
  EXPECT_THAT(Find(kAlice, query + "\xF0\x9D\x94\xB8"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(SearchIntegrationTest, RepliesInProgressAreFoundOnceTheyEnd) {
  const std::string c = Conversation(kAlice, "Replies");
  const absl::Time now = ToMicroseconds(absl::Now());
  absl::StatusOr<StartedReply> started = messages_store_->StartReply(
      kAlice, std::nullopt, std::nullopt,
      MessageRecord{.id = NewUuidV7(),
                    .conversation_id = c,
                    .role = Role::kAssistant,
                    .status = MessageStatus::kInProgress,
                    .created_at = now,
                    .updated_at = now},
      std::nullopt, 42, 4, ContextLimits{});
  ASSERT_THAT(started, IsOk());
  ASSERT_THAT(
      messages_store_->SaveReplyTexts(
          42, {{kAlice, c, started->reply.id, "streaming answer"}}, now),
      IsOk());
  EXPECT_THAT(Ids(kAlice, "streaming"), IsEmpty());
  ASSERT_THAT(messages_store_->FinishReply(kAlice, c, started->reply.id, 42,
                                           "streaming answer, finished",
                                           MessageStatus::kComplete, "m", now),
              IsOk());
  EXPECT_THAT(Ids(kAlice, "finished streaming"),
              ElementsAre(started->reply.id));
}

}  // namespace
}  // namespace chat::message
