// Share links over ShareStorage, against a real, migrated PostgreSQL
// (TEST_DATABASE_URL; skipped without it), as the message service's role:
// snapshots, the read by token without app.user_id through
// shared_conversation() (deploy/migrations/0013_shares.sql), the role's
// blindness to the share tables without app.user_id, the cascades that
// revoke shares, and the per-conversation cap under concurrency.

#include "services/message/share_storage.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/db.h"
#include "common/ids.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "services/message/message_storage.h"
#include "services/message/messages.h"
#include "services/message/shares.h"
#include "tests/integration/database_test.h"
#include "tests/integration/test_database.h"

namespace chat::message {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::SizeIs;

constexpr char kAlice[] = "0190f3a0-0000-7000-8000-00000000a11c";
constexpr char kBob[] = "0190f3a0-0000-7000-8000-000000000b0b";
constexpr char kChat[] = "0190f3a0-0000-7000-8000-0000000000c1";
constexpr char kBobsChat[] = "0190f3a0-0000-7000-8000-0000000000c2";

std::vector<std::string> ContentsOf(const SharedSnapshot& snapshot) {
  std::vector<std::string> contents;
  for (const SharedMessage& m : snapshot.messages) {
    contents.push_back(m.content);
  }
  return contents;
}

class ShareStorageTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    db_->AddUser(kAlice, "alice");
    db_->AddUser(kBob, "bob");
    Admin(
        "INSERT INTO conversations (user_id, id, title, untitled, created_at, "
        "updated_at) VALUES ('" +
        std::string(kAlice) + "', '" + kChat +
        "', 'Trip plans', false, now(), now()), ('" + kBob + "', '" +
        kBobsChat + "', 'Bob''s', false, now(), now())");
    pool_ = DbPool::Create(
        {.url = db_->RoleUrl("chat_message"),
         .size = 8,
         .statements = WithStatements(MessageStorage::Statements(),
                                      ShareStorage::Statements())});
    message_storage_ = std::make_unique<MessageStorage>(pool_.get());
    share_storage_ = std::make_unique<ShareStorage>(pool_.get());
    messages_ = std::make_unique<Messages>(message_storage_.get(), &clock_);
    shares_ = std::make_unique<Shares>(share_storage_.get(), &clock_,
                                       SharesOptions{});
  }

  // Runs `sql` as the superuser and answers the first column of its rows.
  std::vector<std::string> Admin(const std::string& sql) {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    std::vector<std::string> out;
    for (const pqxx::row& row : tx.exec(sql)) {
      out.push_back(row.empty() || row[0].is_null() ? ""
                                                    : row[0].as<std::string>());
    }
    tx.commit();
    return out;
  }

  MessageRecord Add(const std::string& content,
                    const std::string& conversation = kChat,
                    const std::string& user = kAlice) {
    clock_.Advance(absl::Milliseconds(1));
    absl::StatusOr<MessageRecord> m = messages_->Create(
        user, conversation, NewMessage{.role = Role::kUser, .content = content},
        "");
    EXPECT_THAT(m, IsOk());
    return m.value_or(MessageRecord{});
  }

  CreatedShare MustShare(const std::string& user = kAlice,
                         const std::string& conversation = kChat) {
    clock_.Advance(absl::Milliseconds(1));
    absl::StatusOr<CreatedShare> made = shares_->Create(user, conversation);
    EXPECT_THAT(made, IsOk());
    return made.value_or(CreatedShare{});
  }

  std::unique_ptr<DbPool> pool_;
  FakeClock clock_{absl::FromUnixSeconds(1767225600)};
  std::unique_ptr<MessageStorage> message_storage_;
  std::unique_ptr<ShareStorage> share_storage_;
  std::unique_ptr<Messages> messages_;
  std::unique_ptr<Shares> shares_;
};

TEST_F(ShareStorageTest, SnapshotIsReadByTokenWithoutAUser) {
  MessageRecord question = Add("Where to?");
  Add("Lisbon.");
  CreatedShare made = MustShare();
  EXPECT_EQ(made.share.message_count, 2);

  // Later: a message, an edit of a shared message, a new version.
  Add("And in winter?");
  ASSERT_THAT(messages_->Update(kAlice, kChat, question.id,
                                {.content = "Where NOT to?"}),
              IsOk());
  ASSERT_THAT(messages_->Create(kAlice, kChat,
                                NewMessage{.role = Role::kUser,
                                           .content = "another root",
                                           .parent_id = ""},
                                ""),
              IsOk());

  // SharedByToken runs with no app.user_id (DbPool::Transact with "").
  absl::StatusOr<SharedSnapshot> view = shares_->View(made.token);
  ASSERT_THAT(view, IsOk());
  EXPECT_EQ(view->title, "Trip plans");
  EXPECT_THAT(ContentsOf(*view), ElementsAre("Where to?", "Lisbon."));
  EXPECT_EQ(view->created_at, made.share.created_at);
  EXPECT_EQ(view->messages[0].created_at, question.created_at);

  absl::StatusOr<CreatedShare> now = shares_->Create(kAlice, kChat);
  ASSERT_THAT(now, IsOk());
  view = shares_->View(now->token);
  ASSERT_THAT(view, IsOk());
  EXPECT_THAT(ContentsOf(*view), ElementsAre("another root"));
}

TEST_F(ShareStorageTest, OnlyTheTokensHashIsStored) {
  Add("hello");
  CreatedShare made = MustShare();
  EXPECT_THAT(Admin("SELECT encode(token_hash, 'hex') FROM shares"),
              ElementsAre(*ShareTokenHash(made.token)));
  EXPECT_THAT(Admin("SELECT count(*) FROM shares s WHERE strpos(s::text, '" +
                    made.token + "') > 0"),
              ElementsAre("0"));
}

TEST_F(ShareStorageTest, TheRoleCannotReadShareTablesWithoutItsUser) {
  Add("hello");
  CreatedShare made = MustShare();
  const std::string hash = *ShareTokenHash(made.token);
  pqxx::connection conn(db_->RoleUrl("chat_message"));
  auto count = [&](const std::string& setup) {
    pqxx::work tx(conn);
    if (!setup.empty()) tx.exec(setup);
    const std::string counts =
        tx.exec1(
              "SELECT (SELECT count(*) FROM shares) || '/' || "
              "(SELECT count(*) FROM share_messages)")[0]
            .as<std::string>();
    tx.abort();
    return counts;
  };
  EXPECT_EQ(count(""), "0/0");
  // The settings that open the reader's policies do nothing for this role.
  EXPECT_EQ(count("SET LOCAL app.shared_token_hash = '" + hash +
                  "'; SET LOCAL app.shared_share_id = '" + made.share.id + "'"),
            "0/0");
  EXPECT_EQ(count(std::string("SET LOCAL app.user_id = '") + kBob + "'"),
            "0/0");
  // With its user, the owner's rows are there: the counts above could fail.
  EXPECT_EQ(count(std::string("SET LOCAL app.user_id = '") + kAlice + "'"),
            "1/1");

  // Nor can it become the reader.
  {
    pqxx::work tx(conn);
    EXPECT_THROW(tx.exec("SET ROLE chat_share_reader"), pqxx::sql_error);
  }
  // The function answers the snapshot alone and leaves no setting behind.
  pqxx::work tx(conn);
  pqxx::result rows = tx.exec_params(
      "SELECT * FROM shared_conversation(decode($1, 'hex'))", hash);
  ASSERT_THAT(rows, SizeIs(1));
  std::vector<std::string> columns;
  for (pqxx::row::size_type i = 0; i < rows.columns(); ++i) {
    columns.push_back(rows.column_name(i));
  }
  EXPECT_THAT(columns, ElementsAre("title", "shared_at", "role", "content",
                                   "model", "created_at"));
  EXPECT_EQ(rows[0]["content"].as<std::string>(), "hello");
  EXPECT_EQ(tx.exec1("SELECT COALESCE(current_setting('app.shared_share_id', "
                     "true), '') || COALESCE(current_setting("
                     "'app.shared_token_hash', true), '') || "
                     "(SELECT count(*) FROM shares)")[0]
                .as<std::string>(),
            "0");
}

TEST_F(ShareStorageTest, OnlyTheMessageRoleTouchesShares) {
  Add("hello");
  CreatedShare made = MustShare();
  const std::string hash = *ShareTokenHash(made.token);
  // Runs `sql` as `role` with app.user_id = alice; false when refused.
  auto allowed = [&](const std::string& role, const std::string& sql) {
    pqxx::connection conn(db_->RoleUrl(role));
    pqxx::work tx(conn);
    tx.exec_params("SELECT set_config('app.user_id', $1, true)",
                   std::string(kAlice));
    try {
      tx.exec(sql);
      return true;
    } catch (const pqxx::sql_error&) {
      return false;
    }
  };
  for (const char* role : {"chat_auth", "chat_conversation"}) {
    EXPECT_FALSE(allowed(role, "SELECT count(*) FROM shares")) << role;
    EXPECT_FALSE(allowed(role, "SELECT count(*) FROM share_messages")) << role;
    EXPECT_FALSE(allowed(role, "SELECT * FROM shared_conversation(decode('" +
                                   hash + "', 'hex'))"))
        << role;
  }
  EXPECT_TRUE(allowed("chat_message", "SELECT count(*) FROM shares"));
  // A snapshot is never changed, only made and deleted.
  EXPECT_FALSE(allowed("chat_message", "UPDATE shares SET title = 'x'"));
  EXPECT_FALSE(
      allowed("chat_message", "UPDATE share_messages SET content = 'x'"));
}

TEST_F(ShareStorageTest, UnknownAndRevokedTokensAreNotFound) {
  Add("hello");
  CreatedShare made = MustShare();
  EXPECT_THAT(shares_->View(NewShareToken()),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(shares_->Delete(kAlice, kChat, made.share.id), IsOk());
  EXPECT_THAT(shares_->View(made.token), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Admin("SELECT count(*) FROM share_messages"), ElementsAre("0"));
}

TEST_F(ShareStorageTest, ListIsNewestFirstAndIsolated) {
  Add("hello");
  Add("bob's", kBobsChat, kBob);
  CreatedShare first = MustShare();
  CreatedShare second = MustShare();
  CreatedShare bobs = MustShare(kBob, kBobsChat);
  absl::StatusOr<std::vector<ShareRecord>> list = shares_->List(kAlice, kChat);
  ASSERT_THAT(list, IsOk());
  ASSERT_THAT(*list, SizeIs(2));
  EXPECT_EQ((*list)[0].id, second.share.id);
  EXPECT_EQ((*list)[1].id, first.share.id);
  EXPECT_EQ((*list)[0].created_at, second.share.created_at);
  EXPECT_EQ((*list)[0].message_count, 1);

  EXPECT_THAT(shares_->List(kAlice, kBobsChat),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(shares_->Create(kAlice, kBobsChat),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(shares_->Delete(kAlice, kBobsChat, bobs.share.id),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(shares_->Delete(kAlice, kChat, bobs.share.id),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(shares_->View(bobs.token), IsOk());
}

TEST_F(ShareStorageTest, DeletingTheConversationRevokesItsShares) {
  Add("hello");
  CreatedShare made = MustShare();
  // As the conversation service deletes it: its role, its user.
  pqxx::connection conn(db_->RoleUrl("chat_conversation"));
  pqxx::work tx(conn);
  tx.exec_params("SELECT set_config('app.user_id', $1, true)",
                 std::string(kAlice));
  EXPECT_EQ(tx.exec_params("DELETE FROM conversations WHERE user_id = $1::uuid "
                           "AND id = $2::uuid",
                           std::string(kAlice), std::string(kChat))
                .affected_rows(),
            1);
  tx.commit();
  EXPECT_THAT(shares_->View(made.token), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Admin("SELECT (SELECT count(*) FROM shares) + "
                    "(SELECT count(*) FROM share_messages)"),
              ElementsAre("0"));
}

TEST_F(ShareStorageTest, DeletingTheAccountRevokesItsShares) {
  Add("hello");
  CreatedShare made = MustShare();
  Add("bob's", kBobsChat, kBob);
  CreatedShare bobs = MustShare(kBob, kBobsChat);
  // As the auth service deletes an account.
  pqxx::connection conn(db_->RoleUrl("chat_auth"));
  pqxx::work tx(conn);
  tx.exec_params("DELETE FROM users WHERE id = $1::uuid", std::string(kAlice));
  tx.commit();
  EXPECT_THAT(shares_->View(made.token), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(shares_->View(bobs.token), IsOk());
}

TEST_F(ShareStorageTest, TheCapHoldsUnderParallelCreates) {
  Add("hello");
  constexpr int kThreads = 32;
  std::atomic<int> made{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      absl::StatusOr<CreatedShare> share = shares_->Create(kAlice, kChat);
      if (share.ok()) {
        ++made;
      } else if (share.status().code() ==
                 absl::StatusCode::kFailedPrecondition) {
        ++refused;
      } else {
        ++other;
        ADD_FAILURE() << share.status();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(made.load(), kMaxSharesPerConversation);
  EXPECT_EQ(refused.load(), kThreads - kMaxSharesPerConversation);
  EXPECT_EQ(other.load(), 0);
  EXPECT_THAT(Admin("SELECT count(*) FROM shares"),
              ElementsAre(std::to_string(kMaxSharesPerConversation)));
}

TEST_F(ShareStorageTest, ABranchOverTheLimitStoresNothing) {
  const std::string big(100000, 'x');
  for (int i = 0; i * 100000 <= kMaxSharedContentBytes; ++i) Add(big);
  EXPECT_THAT(shares_->Create(kAlice, kChat),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Admin("SELECT count(*) FROM shares"), ElementsAre("0"));
}

}  // namespace
}  // namespace chat::message
