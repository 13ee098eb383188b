// DbPool::ReadRows, the one-round-trip read of the listings, against a real
// PostgreSQL: it shows only the caller's rows, says nothing (nullopt) for an
// account that does not exist, carries its arguments as values whatever
// their text, leaves no setting and no transaction behind on the connection,
// and keeps all of that with many threads sharing a small pool. Also built
// under TSan and ASan by `make test-sanitize`.

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/db.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "tests/integration/database_test.h"
#include "tests/integration/read_test_data.h"
#include "tests/integration/test_database.h"

namespace chat {
namespace {

using ::chat::testing::reads::kAlice;
using ::chat::testing::reads::kAliceChats;
using ::chat::testing::reads::kBob;
using ::chat::testing::reads::kBobChats;
using ::chat::testing::reads::kDivide;
using ::chat::testing::reads::kDivideSql;
using ::chat::testing::reads::kEcho;
using ::chat::testing::reads::kEchoSql;
using ::chat::testing::reads::kMode;
using ::chat::testing::reads::kModeGeneric;
using ::chat::testing::reads::kModeSql;
using ::chat::testing::reads::kNobody;
using ::chat::testing::reads::kRole;
using ::chat::testing::reads::kTitles;
using ::chat::testing::reads::kTitlesSql;

class DbReadRowsTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    ::chat::testing::reads::AddUsers(db_->admin_url());
  }

  std::unique_ptr<DbPool> Pool(int size) {
    return DbPool::Create({.url = db_->RoleUrl(kRole),
                           .size = size,
                           // Generous: under TSan a round trip is slow.
                           .acquire_timeout = absl::Seconds(60),
                           .statements = {{kTitles, kTitlesSql},
                                          {kEcho, kEchoSql},
                                          {kDivide, kDivideSql},
                                          {kModeGeneric, kModeSql,
                                           /*generic_plan=*/true},
                                          {kMode, kModeSql}}});
  }

  int Count(const std::string& sql) {
    pqxx::connection admin(db_->admin_url());
    pqxx::nontransaction tx(admin);
    return tx.exec1(sql)[0].as<int>();
  }
};

std::vector<std::string> Titles(const pqxx::result& rows) {
  std::vector<std::string> titles;
  for (const pqxx::row& row : rows) titles.push_back(row[0].as<std::string>());
  return titles;
}

TEST_F(DbReadRowsTest, ShowsOnlyTheCallersRows) {
  std::unique_ptr<DbPool> pool = Pool(1);
  absl::StatusOr<std::optional<pqxx::result>> alice =
      pool->ReadRows(kAlice, kTitles, std::string(""));
  ASSERT_TRUE(alice.ok()) << alice.status();
  ASSERT_TRUE(alice->has_value());
  EXPECT_EQ(Titles(**alice),
            (std::vector<std::string>{absl::StrCat(kAlice, "-1"),
                                      absl::StrCat(kAlice, "-2"),
                                      absl::StrCat(kAlice, "-3")}));
  absl::StatusOr<std::optional<pqxx::result>> bob =
      pool->ReadRows(kBob, kTitles, std::string(""));
  ASSERT_TRUE(bob.ok()) << bob.status();
  ASSERT_TRUE(bob->has_value());
  EXPECT_EQ((*bob)->size(), kBobChats);
}

// Rows prove the account; without one there are none, and an empty answer
// is nullopt, for the caller to ask again in a transaction.
TEST_F(DbReadRowsTest, AnAccountThatDoesNotExistReadsNothing) {
  std::unique_ptr<DbPool> pool = Pool(1);
  absl::StatusOr<std::optional<pqxx::result>> rows =
      pool->ReadRows(kNobody, kTitles, std::string(""));
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_FALSE(rows->has_value());
  // Rows the filter leaves out: also nullopt, not an empty result.
  rows = pool->ReadRows(kBob, kTitles, std::string(kBob) + "-1");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_TRUE(rows->has_value());
  EXPECT_EQ((*rows)->size(), kBobChats - 1);
  EXPECT_EQ(
      pool->ReadRows("not-a-uuid", kTitles, std::string("")).status().code(),
      absl::StatusCode::kUnauthenticated);
}

TEST_F(DbReadRowsTest, ArgumentsAreValuesWhateverTheirText) {
  std::unique_ptr<DbPool> pool = Pool(1);
  for (const std::string& text :
       {std::string("x'); DELETE FROM conversations; --"),
        std::string("back\\slash \\' and ''quotes'' and $1 and ; "),
        std::string("\xE2\x80\x9Cunicode\xE2\x80\x9D \xF0\x9F\x92\xAC"),
        std::string("")}) {
    absl::StatusOr<std::optional<pqxx::result>> rows =
        pool->ReadRows(kAlice, kEcho, text, int64_t{-9007199254740993}, true,
                       std::optional<std::string>());
    ASSERT_TRUE(rows.ok()) << rows.status();
    ASSERT_TRUE(rows->has_value());
    const pqxx::row row = (**rows)[0];
    EXPECT_EQ(row[0].as<std::string>(), text);
    EXPECT_EQ(row[1].as<int64_t>(), -9007199254740993);
    EXPECT_TRUE(row[2].as<bool>());
    EXPECT_TRUE(row[3].as<bool>());  // nullopt went as NULL
  }
  EXPECT_EQ(Count("SELECT count(*) FROM conversations"),
            kAliceChats + kBobChats);
  // No literal can carry a NUL byte: refused before anything is sent.
  EXPECT_EQ(pool->ReadRows(kAlice, kEcho, std::string("a\0b", 3), int64_t{1},
                           true, std::optional<std::string>("x"))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// The account's setting lives in the read's implicit transaction only, and a
// failed read leaves the session idle: the next call on the one connection
// sees no user and runs normally.
TEST_F(DbReadRowsTest, LeavesNoSettingAndNoTransactionBehind) {
  std::unique_ptr<DbPool> pool = Pool(1);
  ASSERT_TRUE(pool->ReadRows(kAlice, kTitles, std::string("")).ok());
  absl::StatusOr<int> seen =
      pool->Transact<int>("", [](pqxx::work& tx) -> absl::StatusOr<int> {
        return tx.exec1("SELECT count(*) FROM conversations")[0].as<int>();
      });
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(*seen, 0);

  absl::Status failed = pool->ReadRows(kAlice, kDivide, 0).status();
  EXPECT_FALSE(failed.ok());
  absl::StatusOr<std::optional<pqxx::result>> after =
      pool->ReadRows(kAlice, kDivide, 1);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_TRUE(after->has_value());
  EXPECT_EQ((**after)[0][0].as<int>(), 1);
  EXPECT_TRUE(pool->Ping().ok());
}

// A statement marked generic_plan runs with the plan made once, the others
// as PostgreSQL chooses, and the mode ends with the read on the one
// connection both share.
TEST_F(DbReadRowsTest, OnlyAGenericPlanStatementRunsWithItsGenericPlan) {
  std::unique_ptr<DbPool> pool = Pool(1);
  for (int round = 0; round < 2; ++round) {
    absl::StatusOr<std::optional<pqxx::result>> generic =
        pool->ReadRows(kAlice, kModeGeneric, 1);
    ASSERT_TRUE(generic.ok()) << generic.status();
    ASSERT_TRUE(generic->has_value());
    EXPECT_EQ((**generic)[0][0].as<std::string>(), "force_generic_plan");
    absl::StatusOr<std::optional<pqxx::result>> chosen =
        pool->ReadRows(kAlice, kMode, 1);
    ASSERT_TRUE(chosen.ok()) << chosen.status();
    ASSERT_TRUE(chosen->has_value());
    EXPECT_EQ((**chosen)[0][0].as<std::string>(), "auto");
  }
  absl::StatusOr<std::string> after = pool->Transact<std::string>(
      kAlice, [](pqxx::work& tx) -> absl::StatusOr<std::string> {
        return tx.exec1("SELECT current_setting('plan_cache_mode')")[0]
            .as<std::string>();
      });
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, "auto");
}

// Many threads, a pool of two: every read sees exactly its caller's rows
// and runs under its own plan cache mode, whichever connection served the
// call before (another user, a failed statement, an account that does not
// exist, a transaction, a read with its generic plan or without).
TEST_F(DbReadRowsTest, ParallelReadsOfDifferentUsersNeverMix) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 60;
  std::unique_ptr<DbPool> pool = Pool(2);
  std::atomic<int> wrong{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kThreads; ++w) {
    workers.emplace_back([&, w] {
      for (int round = 0; round < kRounds; ++round) {
        switch ((w + round) % 7) {
          case 0:
          case 1: {
            const bool alice = (w + round) % 7 == 0;
            absl::StatusOr<std::optional<pqxx::result>> rows =
                pool->ReadRows(alice ? kAlice : kBob, kTitles, std::string(""));
            const size_t expected = alice ? kAliceChats : kBobChats;
            if (!rows.ok() || !rows->has_value() ||
                (*rows)->size() != expected) {
              ++wrong;
            }
            break;
          }
          case 2: {
            absl::StatusOr<std::optional<pqxx::result>> rows =
                pool->ReadRows(kNobody, kTitles, std::string(""));
            if (!rows.ok() || rows->has_value()) ++wrong;
            break;
          }
          case 3:
            if (pool->ReadRows(kBob, kDivide, 0).ok()) ++wrong;
            break;
          case 4: {
            absl::StatusOr<int> seen = pool->Transact<int>(
                "", [](pqxx::work& tx) -> absl::StatusOr<int> {
                  return tx.exec1("SELECT count(*) FROM conversations")[0]
                      .as<int>();
                });
            if (!seen.ok() || *seen != 0) ++wrong;
            break;
          }
          case 5:
          case 6: {
            // The plan cache mode of one read never reaches the next.
            const bool generic = (w + round) % 7 == 5;
            absl::StatusOr<std::optional<pqxx::result>> rows =
                pool->ReadRows(kAlice, generic ? kModeGeneric : kMode, 1);
            if (!rows.ok() || !rows->has_value() ||
                (**rows)[0][0].as<std::string>() !=
                    (generic ? "force_generic_plan" : "auto")) {
              ++wrong;
            }
            break;
          }
        }
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(Count(absl::StrCat(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = '",
                kRole, "' AND state LIKE 'idle in transaction%'")),
            0);
}

}  // namespace
}  // namespace chat
