// Migrations 0005-0007 (conversation trees) on a database that holds data
// of the linear schema: every conversation becomes one branch in its
// current order, in batches that are safe to run again, and the message
// service then reads and extends it as any other branch. Needs
// TEST_DATABASE_URL (skipped without it).

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/ids.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "services/message/message_storage.h"
#include "services/message/messages.h"
#include "tests/integration/test_database.h"

namespace chat {
namespace {

namespace fs = std::filesystem;
using ::chat::message::Branch;
using ::chat::message::MessageRecord;
using ::chat::message::Messages;
using ::chat::message::MessageStorage;
using ::chat::message::Role;
using ::chat::testing::IsOk;
using ::chat::testing::TestDatabase;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr char kAlice[] = "0190f3a0-0000-7000-8000-00000000a11c";
constexpr char kBob[] = "0190f3a0-0000-7000-8000-000000000b0b";
constexpr char kLinear[] = "0190f3a0-0000-7000-8000-0000000000c1";
constexpr char kEmptied[] = "0190f3a0-0000-7000-8000-0000000000c2";
constexpr char kBobs[] = "0190f3a0-0000-7000-8000-0000000000c3";
constexpr char kNil[] = "00000000-0000-0000-0000-000000000000";

// A directory with copies of the production migrations up to `last`.
std::string MigrationsUpTo(int last) {
  const fs::path dir =
      fs::temp_directory_path() / absl::StrCat("chat-migrations-", NewUuidV7());
  fs::create_directories(dir);
  for (const fs::directory_entry& entry :
       fs::directory_iterator(CHAT_MIGRATIONS_DIR)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".sql" &&
        std::stoi(name.substr(0, 4)) <= last) {
      fs::copy_file(entry.path(), dir / name);
    }
  }
  return dir.string();
}

class TreeMigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestDatabase::Configured())
      GTEST_SKIP() << "TEST_DATABASE_URL is unset";
    linear_dir_ = MigrationsUpTo(4);
    absl::StatusOr<std::unique_ptr<TestDatabase>> db =
        TestDatabase::CreateMigratedWith(linear_dir_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    SeedLinearHistory();
  }

  void TearDown() override {
    for (const std::string& dir : {linear_dir_, trees_dir_}) {
      if (!dir.empty()) fs::remove_all(dir);
    }
  }

  // As the linear schema left it: Alice's conversation of seven messages
  // whose positions have gaps (deleted messages), one whose messages were
  // all deleted, and Bob's of one message.
  void SeedLinearHistory() {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    for (const auto& [id, name] :
         {std::pair{kAlice, "alice"}, std::pair{kBob, "bob"}}) {
      tx.exec_params(
          "INSERT INTO users (id, username, email, password_hash, created_at, "
          "updated_at) VALUES ($1::uuid, $2, $2 || '@example.com', 'x', "
          "now(), now())",
          std::string(id), std::string(name));
    }
    auto conversation = [&](const char* user, const char* id, int count,
                            int last_seq) {
      tx.exec_params(
          "INSERT INTO conversations (user_id, id, title, untitled, "
          "message_count, last_seq, created_at, updated_at) VALUES "
          "($1::uuid, $2::uuid, 'linear', false, $3, $4, now(), now())",
          std::string(user), std::string(id), count, last_seq);
    };
    conversation(kAlice, kLinear, 7, 9);
    conversation(kAlice, kEmptied, 0, 3);
    conversation(kBob, kBobs, 1, 1);
    auto message = [&](const char* user, const char* conversation_id, int seq) {
      const std::string id = NewUuidV7();
      tx.exec_params(
          "INSERT INTO messages (user_id, conversation_id, seq, id, role, "
          "content, status, created_at, updated_at) VALUES ($1::uuid, "
          "$2::uuid, $3::bigint, $4::uuid, 'user', 'message ' || $3::bigint, "
          "'complete', "
          "now(), now())",
          std::string(user), std::string(conversation_id), seq, id);
      return id;
    };
    for (int seq : {1, 2, 3, 5, 6, 8, 9}) {
      linear_ids_.push_back(message(kAlice, kLinear, seq));
    }
    bobs_id_ = message(kBob, kBobs, 1);
    tx.commit();
  }

  std::vector<std::string> Column(const std::string& sql) {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    std::vector<std::string> values;
    for (const pqxx::row& row : tx.exec(sql)) {
      values.push_back(row[0].is_null() ? "NULL" : row[0].as<std::string>());
    }
    return values;
  }

  std::string linear_dir_;
  std::string trees_dir_;
  std::unique_ptr<TestDatabase> db_;
  std::vector<std::string> linear_ids_;
  std::string bobs_id_;
};

TEST_F(TreeMigrationTest, EveryConversationBecomesOneBranchInItsOrder) {
  ASSERT_THAT(db_->MigrateFully(), IsOk());
  std::vector<std::string> expected_parents = {kNil};
  for (size_t i = 0; i + 1 < linear_ids_.size(); ++i) {
    expected_parents.push_back(linear_ids_[i]);
  }
  EXPECT_THAT(Column(absl::StrCat("SELECT parent_id::text FROM messages WHERE "
                                  "conversation_id = '",
                                  kLinear, "' ORDER BY seq")),
              ElementsAreArray(expected_parents));
  EXPECT_THAT(Column("SELECT DISTINCT active::text FROM messages"),
              ElementsAre("true"));
  EXPECT_THAT(Column(absl::StrCat(
                  "SELECT active_leaf_id::text FROM conversations WHERE id IN "
                  "('",
                  kLinear, "', '", kEmptied, "', '", kBobs, "') ORDER BY id")),
              ElementsAre(linear_ids_.back(), "NULL", bobs_id_));
  EXPECT_THAT(Column("SELECT count(*) FROM pg_proc WHERE proname = "
                     "'link_messages_into_branches'"),
              ElementsAre("0"))
      << "0007 drops the procedure";
}

class LinkedInBatchesTest : public TreeMigrationTest {};

TEST_F(LinkedInBatchesTest, SmallBatchesAndASecondRunLinkTheSame) {
  trees_dir_ = MigrationsUpTo(5);
  {
    // 0005, then the linking in batches of two (so batches meet at gaps),
    // twice; the production 0006 then finds nothing left to do.
    ASSERT_THAT(db_->Migrate(trees_dir_), IsOk());
    pqxx::connection admin(db_->admin_url());
    pqxx::nontransaction tx(admin);
    tx.exec("CALL link_messages_into_branches(2)");
    tx.exec("CALL link_messages_into_branches(2)");
  }
  ASSERT_THAT(db_->MigrateFully(), IsOk());
  std::vector<std::string> expected_parents = {kNil};
  for (size_t i = 0; i + 1 < linear_ids_.size(); ++i) {
    expected_parents.push_back(linear_ids_[i]);
  }
  EXPECT_THAT(Column(absl::StrCat("SELECT parent_id::text FROM messages WHERE "
                                  "conversation_id = '",
                                  kLinear, "' ORDER BY seq")),
              ElementsAreArray(expected_parents));
}

TEST_F(TreeMigrationTest, TheMessageServiceReadsAndExtendsTheMigratedBranch) {
  ASSERT_THAT(db_->MigrateFully(), IsOk());
  std::unique_ptr<DbPool> pool =
      DbPool::Create({.url = db_->RoleUrl("chat_message"),
                      .size = 2,
                      .statements = MessageStorage::Statements()});
  MessageStorage storage(pool.get());
  FakeClock clock(absl::Now());
  Messages messages(&storage, &clock);

  absl::StatusOr<message::MessagePage> page =
      messages.List(kAlice, kLinear, {.page_size = 3});
  ASSERT_THAT(page, IsOk());
  ASSERT_EQ(page->messages.size(), 3u);
  EXPECT_EQ(page->messages[0].parent_id, "");
  EXPECT_EQ(page->messages[1].parent_id, linear_ids_[0]);
  EXPECT_EQ(page->messages[2].sibling_count, 1);

  absl::StatusOr<MessageRecord> next = messages.Create(
      kAlice, kLinear, {.role = Role::kUser, .content = "after"}, "");
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(next->parent_id, linear_ids_.back());

  // A version of the third message: the branch now ends there.
  absl::StatusOr<MessageRecord> version = messages.Create(
      kAlice, kLinear,
      {.role = Role::kUser, .content = "v2", .parent_id = linear_ids_[1]}, "");
  ASSERT_THAT(version, IsOk());
  EXPECT_EQ(version->sibling_index, 1);
  absl::StatusOr<message::MessagePage> branch =
      messages.List(kAlice, kLinear, {});
  ASSERT_THAT(branch, IsOk());
  std::vector<std::string> contents;
  for (const MessageRecord& m : branch->messages) contents.push_back(m.content);
  EXPECT_THAT(contents, ElementsAre("message 1", "message 2", "v2"));

  // Bob's functions see only Bob: activate_branch refuses another user.
  pqxx::connection as_conversation(db_->RoleUrl("chat_conversation"));
  pqxx::work tx(as_conversation);
  tx.exec_params("SELECT set_config('app.user_id', $1, true)",
                 std::string(kBob));
  EXPECT_TRUE(tx.exec_params1("SELECT activate_branch($1::uuid, $2::uuid, "
                              "$3::uuid)",
                              std::string(kAlice), std::string(kLinear),
                              linear_ids_[0])[0]
                  .is_null());
}

}  // namespace
}  // namespace chat
