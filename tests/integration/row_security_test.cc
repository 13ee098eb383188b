// The database layer on its own: row-level security hides every other
// user's conversations, messages and idempotency keys from the service
// roles, even from a query that forgets to filter by owner.

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "tests/integration/database_test.h"
#include "tests/integration/test_database.h"

namespace chat {
namespace {

constexpr char kAlice[] = "0190f3a0-0000-7000-8000-00000000000a";
constexpr char kBob[] = "0190f3a0-0000-7000-8000-00000000000b";
constexpr char kAliceChat[] = "0190f3a0-0000-7000-8000-0000000000a1";
constexpr char kBobChat[] = "0190f3a0-0000-7000-8000-0000000000b1";

class RowSecurityTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    // Two users with a conversation, a message and an idempotency key each,
    // seeded as the superuser, whom row-level security does not bind.
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    for (const auto& [user, chat] :
         {std::pair{kAlice, kAliceChat}, {kBob, kBobChat}}) {
      tx.exec_params(
          "INSERT INTO users (id, username, email, password_hash, created_at, "
          "updated_at) "
          "VALUES ($1::uuid, $1::text, $1::text || '@example.com', 'x', now(), "
          "now())",
          std::string(user));
      tx.exec_params(
          "INSERT INTO conversations (user_id, id, title, untitled, "
          "created_at, updated_at, "
          "message_count, last_seq) VALUES ($1::uuid, $2::uuid, 'secret of ' "
          "|| $1::text, false, now(), now(), 1, 1)",
          std::string(user), std::string(chat));
      tx.exec_params(
          "INSERT INTO messages (user_id, conversation_id, seq, id, role, "
          "content, status, "
          "created_at, updated_at) VALUES ($1, $2, 1, gen_random_uuid(), "
          "'user', 'hi', "
          "'complete', now(), now())",
          std::string(user), std::string(chat));
      tx.exec_params(
          "INSERT INTO idempotency_keys (user_id, key, request_hash, "
          "resource_id, created_at) "
          "VALUES ($1, 'k', 'h', $2, now())",
          std::string(user), std::string(chat));
    }
    tx.commit();
  }

  // Runs `sql` as `role` in a transaction whose app.user_id is `user` (none
  // when empty) and returns the number of rows it saw or changed.
  int64_t CountAs(const std::string& role, const std::string& user,
                  const std::string& sql) {
    pqxx::connection conn(db_->RoleUrl(role));
    pqxx::work tx(conn);
    if (!user.empty())
      tx.exec_params("SELECT set_config('app.user_id', $1, true)", user);
    pqxx::result r = tx.exec(sql);
    return r.columns() > 0 && r.size() == 1 && r.columns() == 1 &&
                   std::string(r.column_name(0)) == "count"
               ? r[0][0].as<int64_t>()
               : static_cast<int64_t>(r.affected_rows());
  }
};

TEST_F(RowSecurityTest, AQueryThatForgetsTheOwnerSeesOnlyTheCallersRows) {
  for (const char* role : {"chat_conversation", "chat_message"}) {
    EXPECT_EQ(CountAs(role, kAlice, "SELECT count(*) FROM conversations"), 1)
        << role;
    EXPECT_EQ(
        CountAs(role, kAlice,
                std::string("SELECT count(*) FROM conversations WHERE id = '") +
                    kBobChat + "'"),
        0)
        << role;
    EXPECT_EQ(CountAs(role, kAlice, "SELECT count(*) FROM idempotency_keys"), 1)
        << role;
  }
  EXPECT_EQ(CountAs("chat_message", kAlice, "SELECT count(*) FROM messages"),
            1);
  EXPECT_EQ(CountAs("chat_message", kBob, "SELECT count(*) FROM messages"), 1);
}

TEST_F(RowSecurityTest, WithoutTheSettingNothingIsVisible) {
  EXPECT_EQ(
      CountAs("chat_conversation", "", "SELECT count(*) FROM conversations"),
      0);
  EXPECT_EQ(CountAs("chat_message", "", "SELECT count(*) FROM messages"), 0);
}

TEST_F(RowSecurityTest, UpdatesAndDeletesCannotReachOtherUsers) {
  // Each statement is rolled back; its row count shows what it could reach.
  EXPECT_EQ(CountAs("chat_conversation", kAlice,
                    "UPDATE conversations SET title = 'x'"),
            1);
  EXPECT_EQ(CountAs("chat_conversation", kAlice, "DELETE FROM conversations"),
            1);
  EXPECT_EQ(
      CountAs("chat_message", kAlice, "UPDATE messages SET content = 'x'"), 1);
  EXPECT_EQ(CountAs("chat_message", kAlice, "DELETE FROM messages"), 1);
  EXPECT_EQ(CountAs("chat_message", kAlice, "DELETE FROM idempotency_keys"), 1);
  EXPECT_EQ(CountAs("chat_message", "", "DELETE FROM messages"), 0);
}

TEST_F(RowSecurityTest, RowsCannotBeWrittenForAnotherUser) {
  pqxx::connection conn(db_->RoleUrl("chat_conversation"));
  pqxx::work tx(conn);
  tx.exec_params("SELECT set_config('app.user_id', $1, true)",
                 std::string(kAlice));
  EXPECT_THROW(
      tx.exec_params(
          "INSERT INTO conversations (user_id, id, title, untitled, "
          "created_at, updated_at) VALUES ($1, gen_random_uuid(), 't', "
          "true, now(), now())",
          std::string(kBob)),
      pqxx::sql_error);
}

TEST_F(RowSecurityTest, ServiceRolesHaveOnlyTheirTables) {
  EXPECT_THROW(
      CountAs("chat_conversation", kAlice, "SELECT count(*) FROM messages"),
      pqxx::sql_error);
  // Of users, only the id: enough to tell a deleted account from an empty
  // one, nothing of the account itself.
  for (const char* role : {"chat_conversation", "chat_message"}) {
    EXPECT_EQ(CountAs(role, kAlice,
                      "SELECT count(*) FROM users WHERE id = "
                      "current_setting('app.user_id')::uuid"),
              1);
    for (const char* column : {"password_hash", "email", "username"}) {
      EXPECT_THROW(CountAs(role, kAlice,
                           std::string("SELECT ") + column + " FROM users"),
                   pqxx::sql_error)
          << role << " reads " << column;
    }
  }
  EXPECT_THROW(
      CountAs("chat_message", kAlice, "SELECT count(*) FROM refresh_tokens"),
      pqxx::sql_error);
  EXPECT_THROW(CountAs("chat_auth", kAlice, "SELECT count(*) FROM messages"),
               pqxx::sql_error);
}

}  // namespace
}  // namespace chat

namespace chat {
namespace {

// docs/architecture.md "Roles: least privilege": no service but auth can insert
// users, and the message service can update only the conversation columns it
// maintains.
TEST_F(RowSecurityTest, OnlyAuthInsertsUsers) {
  for (const char* role : {"chat_conversation", "chat_message"}) {
    EXPECT_THROW(CountAs(role, "",
                         "INSERT INTO users (id, username, email, "
                         "password_hash, created_at, updated_at) VALUES "
                         "(gen_random_uuid(), 'mallory', 'm@example.com', "
                         "'x', now(), now())"),
                 pqxx::sql_error)
        << role;
  }
}

TEST_F(RowSecurityTest, TheMessageRoleUpdatesOnlyTheColumnsItMaintains) {
  EXPECT_EQ(CountAs("chat_message", kAlice,
                    "UPDATE conversations SET message_count = message_count, "
                    "last_seq = last_seq, updated_at = now(), "
                    "last_message_at = now()"),
            1);
  for (const char* change :
       {"title = 'x'", "untitled = false", "archived = true", "pinned = true",
        "metadata = '{}'", "user_id = gen_random_uuid()",
        "id = gen_random_uuid()", "created_at = now()"}) {
    EXPECT_THROW(CountAs("chat_message", kAlice,
                         std::string("UPDATE conversations SET ") + change),
                 pqxx::sql_error)
        << change;
  }
}

// The automatic title goes only to a conversation still untitled.
TEST_F(RowSecurityTest, TheMessageRoleNamesOnlyUntitledConversations) {
  const std::string name = std::string(
                               "SELECT count(*) FROM (SELECT 1 WHERE "
                               "name_untitled_conversation('") +
                           kAlice + "'::uuid, '" + kAliceChat +
                           "'::uuid, 'auto', now())) t";
  EXPECT_EQ(CountAs("chat_message", kAlice, name), 0) << "already titled";
  {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    tx.exec_params("UPDATE conversations SET untitled = true WHERE id = $1",
                   std::string(kAliceChat));
    tx.commit();
  }
  EXPECT_EQ(CountAs("chat_message", kBob, name), 0) << "another user's";
  EXPECT_EQ(CountAs("chat_message", kAlice, name), 1);
}

// External users' rows come only through ensure_external_user, which never
// takes over a local account.
TEST_F(RowSecurityTest, ExternalUsersCannotTakeALocalAccountsId) {
  const std::string call =
      "SELECT count(*) FROM (SELECT 1 WHERE ensure_external_user("
      "'%s'::uuid, 'ext_x', 'x@example.com', 'x@external.invalid')) t";
  auto ensure = [&](const char* id) {
    std::string sql = call;
    sql.replace(sql.find("%s"), 2, id);
    return CountAs("chat_message", "", sql);
  };
  EXPECT_EQ(ensure(kAlice), 0) << "a local account's id";
  constexpr char kNew[] = "0190f3a0-0000-7000-8000-0000000000ee";
  EXPECT_EQ(ensure(kNew), 1);
  EXPECT_EQ(ensure(kNew), 1) << "seen again";
}

}  // namespace
}  // namespace chat
