#ifndef CHAT_TESTS_INTEGRATION_READ_TEST_DATA_H_
#define CHAT_TESTS_INTEGRATION_READ_TEST_DATA_H_

// What the tests of the listings' reads (DbPool::ReadRows, DbReader) read:
// two users with a few conversations each, and statements that show what a
// read runs under. As role chat_conversation.

#include <string>
#include <utility>

#include "pqxx/pqxx"

namespace chat::testing::reads {

inline constexpr char kRole[] = "chat_conversation";
inline constexpr char kAlice[] = "0190f3a0-0000-7000-8000-00000000001a";
inline constexpr char kBob[] = "0190f3a0-0000-7000-8000-00000000001b";
inline constexpr char kNobody[] = "0190f3a0-0000-7000-8000-00000000001f";
inline constexpr int kAliceChats = 3;
inline constexpr int kBobChats = 2;

// Names under which the statements below are prepared.
inline constexpr char kTitles[] = "read_titles";
inline constexpr char kEcho[] = "read_echo";
inline constexpr char kMode[] = "read_mode";
// kModeSql again, read with its generic plan.
inline constexpr char kModeGeneric[] = "read_mode_generic";
inline constexpr char kDivide[] = "read_divide";

// A statement that forgets to filter by owner: only row-level security
// keeps other users' rows out.
inline constexpr char kTitlesSql[] =
    "SELECT title FROM conversations WHERE title <> $1 ORDER BY title";
// Echoes its arguments back, once per visible conversation.
inline constexpr char kEchoSql[] =
    "SELECT $1::text, $2::bigint, $3::boolean, $4::text IS NULL "
    "FROM conversations LIMIT 1";
// The plan cache mode the statement runs under, once per visible
// conversation.
inline constexpr char kModeSql[] =
    "SELECT current_setting('plan_cache_mode') FROM conversations "
    "LIMIT $1::int";
// Fails when $1 is 0: a statement error on the read path.
inline constexpr char kDivideSql[] =
    "SELECT 1 / $1::int FROM conversations LIMIT 1";

// Alice with kAliceChats conversations titled "<id>-1".., Bob with
// kBobChats.
inline void AddUsers(const std::string& admin_url) {
  pqxx::connection admin(admin_url);
  pqxx::work tx(admin);
  for (const auto& [user, chats] :
       {std::pair{kAlice, kAliceChats}, {kBob, kBobChats}}) {
    tx.exec_params0(
        "INSERT INTO users (id, username, email, password_hash, created_at, "
        "updated_at) VALUES ($1::uuid, $1::text, $1::text || "
        "'@example.com', 'x', now(), now())",
        std::string(user));
    tx.exec_params0(
        "INSERT INTO conversations (user_id, id, title, untitled, "
        "created_at, updated_at) SELECT $1::uuid, gen_random_uuid(), "
        "$1::text || '-' || g, false, now(), now() "
        "FROM generate_series(1, $2) g",
        std::string(user), chats);
  }
  tx.commit();
}

}  // namespace chat::testing::reads

#endif  // CHAT_TESTS_INTEGRATION_READ_TEST_DATA_H_
