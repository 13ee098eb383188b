#include "deploy/migrate/migrator.h"

#include <libpq-fe.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "tests/integration/test_database.h"

namespace chat::migrate {
namespace {

namespace fs = std::filesystem;

// The same password the integration tests give the service roles, which
// exist once per cluster: tests running side by side then agree on it.
constexpr char kRolePassword[] = "chat-test-role-password";

// A fresh empty directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (fs::temp_directory_path() / "chat-migrate-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }
  void Write(const std::string& filename, const std::string& contents) const {
    std::ofstream(path_ / filename, std::ios::binary | std::ios::trunc)
        << contents;
  }

 private:
  fs::path path_;
};

std::string RandomSuffix() {
  std::random_device random;
  return absl::StrCat(absl::Hex(random(), absl::kZeroPad8),
                      absl::Hex(random(), absl::kZeroPad8));
}

// Every test gets its own database on the throw-away cluster of
// TEST_DATABASE_URL (`make test` starts one), dropped afterwards.
class MigratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* server = std::getenv("TEST_DATABASE_URL");
    if (server == nullptr || *server == '\0') {
      GTEST_SKIP() << "TEST_DATABASE_URL is unset; `make test` starts a "
                      "throw-away PostgreSQL and sets it";
    }
    server_url_ = server;
    database_ = absl::StrCat("migrate_test_", RandomSuffix());
    pqxx::connection admin(server_url_);
    pqxx::nontransaction tx(admin);
    tx.exec0(absl::StrCat("CREATE DATABASE ", tx.quote_name(database_)));
    url_ = chat::testing::WithConnectionKeywords(server_url_,
                                                 {{"dbname", database_}});
  }

  void TearDown() override {
    if (database_.empty()) return;
    pqxx::connection admin(server_url_);
    pqxx::nontransaction tx(admin);
    tx.exec0(absl::StrCat("DROP DATABASE IF EXISTS ", tx.quote_name(database_),
                          " WITH (FORCE)"));
  }

  // The single value of a query on the test database.
  template <typename T>
  T Query(const std::string& sql) {
    pqxx::connection conn(url_);
    pqxx::nontransaction tx(conn);
    return tx.exec1(sql)[0].as<T>();
  }

  int AppliedCount() {
    return Query<int>("SELECT count(*) FROM schema_migrations");
  }

  std::string server_url_;
  std::string database_;
  std::string url_;
};

TEST(Sha256HexTest, KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(MigratorCreateTest, SortsByVersionNumberAndIgnoresOtherFiles) {
  TempDir dir;
  dir.Write("10_ten.sql", "SELECT 10;");
  dir.Write("9_nine.sql", "SELECT 9;");
  dir.Write("0002_two.sql", "SELECT 2;");
  dir.Write("README.md", "not a migration");
  absl::StatusOr<Migrator> migrator = Migrator::Create(dir.path().string());
  ASSERT_TRUE(migrator.ok()) << migrator.status();
  ASSERT_EQ(migrator->migrations().size(), 3u);
  EXPECT_EQ(migrator->migrations()[0].version, 2);
  EXPECT_EQ(migrator->migrations()[0].name, "two");
  EXPECT_EQ(migrator->migrations()[0].checksum, Sha256Hex("SELECT 2;"));
  EXPECT_EQ(migrator->migrations()[1].version, 9);
  EXPECT_EQ(migrator->migrations()[2].version, 10);
}

TEST(MigratorCreateTest, RejectsBadNamesDuplicatesAndEmptyDirectories) {
  {
    TempDir dir;
    dir.Write("create_users.sql", "SELECT 1;");
    absl::StatusOr<Migrator> migrator = Migrator::Create(dir.path().string());
    EXPECT_EQ(migrator.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(
        absl::StrContains(migrator.status().message(), "create_users.sql"))
        << migrator.status();
  }
  {
    TempDir dir;
    dir.Write("0001_a.sql", "SELECT 1;");
    dir.Write("1_b.sql", "SELECT 1;");
    absl::StatusOr<Migrator> migrator = Migrator::Create(dir.path().string());
    EXPECT_EQ(migrator.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(migrator.status().message(), "share"))
        << migrator.status();
  }
  {
    TempDir dir;
    EXPECT_EQ(Migrator::Create(dir.path().string()).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(Migrator::Create("/nonexistent/migrations").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(MigratorTest, AppliesProductionMigrationsOnceAndThenNothing) {
  absl::StatusOr<Migrator> migrator = Migrator::Create(CHAT_MIGRATIONS_DIR);
  ASSERT_TRUE(migrator.ok()) << migrator.status();
  std::vector<int> all;
  for (const Migration& m : migrator->migrations()) all.push_back(m.version);

  absl::StatusOr<MigrationReport> first = migrator->Apply(url_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->applied, all);
  EXPECT_TRUE(first->already.empty());

  absl::StatusOr<MigrationReport> second = migrator->Apply(url_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->applied.empty());
  EXPECT_EQ(second->already, all);
  EXPECT_EQ(AppliedCount(), static_cast<int>(all.size()));
  EXPECT_EQ(Query<std::string>(
                "SELECT checksum FROM schema_migrations ORDER BY version "
                "LIMIT 1"),
            migrator->migrations().front().checksum);
}

TEST_F(MigratorTest, AppliesNewFilesInVersionOrder) {
  TempDir dir;
  dir.Write("0001_create.sql", "CREATE TABLE t (v int);");
  ASSERT_TRUE(Migrate(url_, dir.path().string()).ok());
  dir.Write("0003_three.sql", "INSERT INTO t VALUES (3);");
  dir.Write("0002_two.sql", "INSERT INTO t VALUES (2);");

  std::vector<int> seen;
  ApplyOptions options;
  options.on_applied = [&seen](const Migration& m, absl::Duration) {
    seen.push_back(m.version);
  };
  absl::StatusOr<Migrator> migrator = Migrator::Create(dir.path().string());
  ASSERT_TRUE(migrator.ok()) << migrator.status();
  absl::StatusOr<MigrationReport> report = migrator->Apply(url_, {}, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->applied, (std::vector<int>{2, 3}));
  EXPECT_EQ(seen, (std::vector<int>{2, 3}));
  EXPECT_EQ(Query<std::string>("SELECT string_agg(v::text, ',' ORDER BY v) "
                               "FROM t"),
            "2,3");
}

TEST_F(MigratorTest, ChangedChecksumFailsAndAppliesNothing) {
  TempDir dir;
  dir.Write("0001_create.sql", "CREATE TABLE t (v int);");
  dir.Write("0002_insert.sql", "INSERT INTO t VALUES (2);");
  ASSERT_TRUE(Migrate(url_, dir.path().string()).ok());

  dir.Write("0002_insert.sql", "INSERT INTO t VALUES (20);");
  dir.Write("0003_more.sql", "CREATE TABLE u (v int);");
  absl::Status status = Migrate(url_, dir.path().string());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "0002_insert.sql")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "changed")) << status;
  EXPECT_EQ(AppliedCount(), 2);
  EXPECT_EQ(Query<int>("SELECT count(*) FROM pg_tables WHERE tablename = 'u'"),
            0);
}

TEST_F(MigratorTest, AppliedFileMissingFromDirectoryFails) {
  TempDir dir;
  dir.Write("0001_create.sql", "CREATE TABLE t (v int);");
  dir.Write("0002_insert.sql", "INSERT INTO t VALUES (2);");
  ASSERT_TRUE(Migrate(url_, dir.path().string()).ok());
  fs::remove(dir.path() / "0002_insert.sql");

  absl::Status status = Migrate(url_, dir.path().string());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "0002_insert.sql")) << status;
}

TEST_F(MigratorTest, FailingMigrationIsRolledBackAndCanBeFixed) {
  TempDir dir;
  dir.Write("0001_create.sql", "CREATE TABLE t (v int);");
  dir.Write("0002_broken.sql", "CREATE TABLE u (v int);\nSELECT 1/0;");
  absl::Status status = Migrate(url_, dir.path().string());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "0002_broken.sql")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "division by zero"))
      << status;
  EXPECT_EQ(AppliedCount(), 1);
  EXPECT_EQ(Query<int>("SELECT count(*) FROM pg_tables WHERE tablename = 'u'"),
            0);

  // Never applied, so it may still be edited.
  dir.Write("0002_broken.sql", "CREATE TABLE u (v int);");
  absl::Status fixed = Migrate(url_, dir.path().string());
  EXPECT_TRUE(fixed.ok()) << fixed;
  EXPECT_EQ(AppliedCount(), 2);
}

TEST_F(MigratorTest, ConcurrentRunsApplyEachMigrationExactlyOnce) {
  TempDir dir;
  // Without the lock, a second run would fail on CREATE TABLE or insert a
  // row twice; the sleep keeps the first run busy while the others start.
  dir.Write("0001_create.sql", "CREATE TABLE t (v int);");
  dir.Write("0002_slow.sql",
            "SELECT pg_sleep(0.5);\nINSERT INTO t VALUES (2);");
  dir.Write("0003_insert.sql", "INSERT INTO t VALUES (3);");
  absl::StatusOr<Migrator> migrator = Migrator::Create(dir.path().string());
  ASSERT_TRUE(migrator.ok()) << migrator.status();

  constexpr int kRuns = 4;
  std::vector<absl::StatusOr<MigrationReport>> reports(
      kRuns, absl::UnknownError("not run"));
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRuns; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < kRuns) std::this_thread::yield();
      reports[i] = migrator->Apply(url_);
    });
  }
  for (std::thread& t : threads) t.join();

  std::vector<int> applied;
  for (const absl::StatusOr<MigrationReport>& report : reports) {
    ASSERT_TRUE(report.ok()) << report.status();
    applied.insert(applied.end(), report->applied.begin(),
                   report->applied.end());
  }
  std::sort(applied.begin(), applied.end());
  EXPECT_EQ(applied, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(AppliedCount(), 3);
  EXPECT_EQ(Query<int>("SELECT count(*) FROM t"), 2);
}

TEST_F(MigratorTest, WaitsForTheLockNoLongerThanTheTimeout) {
  TempDir dir;
  dir.Write("0001_create.sql", "CREATE TABLE t (v int);");
  pqxx::connection holder(url_);
  pqxx::nontransaction tx(holder);
  tx.exec(absl::StrCat("SELECT pg_advisory_lock(", kAdvisoryLockKey, ")"));

  absl::StatusOr<Migrator> migrator = Migrator::Create(dir.path().string());
  ASSERT_TRUE(migrator.ok()) << migrator.status();
  ApplyOptions options;
  options.lock_timeout = absl::Milliseconds(200);
  absl::StatusOr<MigrationReport> report = migrator->Apply(url_, {}, options);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kDeadlineExceeded)
      << report.status();

  tx.exec(absl::StrCat("SELECT pg_advisory_unlock(", kAdvisoryLockKey, ")"));
  EXPECT_TRUE(migrator->Apply(url_, {}, options).ok());
}

TEST_F(MigratorTest, SetsRolePasswordsAsScramSecrets) {
  absl::StatusOr<Migrator> migrator = Migrator::Create(CHAT_MIGRATIONS_DIR);
  ASSERT_TRUE(migrator.ok()) << migrator.status();
  absl::StatusOr<MigrationReport> report =
      migrator->Apply(url_, {{"chat_auth", kRolePassword}});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->roles, std::vector<std::string>{"chat_auth"});

  EXPECT_TRUE(absl::StartsWith(
      Query<std::string>(
          "SELECT rolpassword FROM pg_authid WHERE rolname = 'chat_auth'"),
      "SCRAM-SHA-256$"));
  pqxx::connection as_auth(chat::testing::WithConnectionKeywords(
      url_, {{"user", "chat_auth"}, {"password", kRolePassword}}));
  pqxx::nontransaction tx(as_auth);
  EXPECT_EQ(tx.exec1("SELECT current_user")[0].as<std::string>(), "chat_auth");
  EXPECT_THROW(pqxx::connection(chat::testing::WithConnectionKeywords(
                   url_, {{"user", "chat_auth"}, {"password", "wrong"}})),
               pqxx::broken_connection);
}

TEST_F(MigratorTest, UnknownRoleIsAnError) {
  absl::Status status = Migrate(url_, CHAT_MIGRATIONS_DIR,
                                {{"no_such_role", "secret-value-0123456789"}});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "no_such_role")) << status;
  EXPECT_FALSE(absl::StrContains(status.message(), "secret-value")) << status;
}

// The prod overlay's example secrets must never become real passwords.
TEST_F(MigratorTest, PlaceholderPasswordsAreRefusedBeforeAnythingChanges) {
  for (const char* password : {"CHANGE_ME", "CHANGE_ME_CHANGE_ME_CHANGE_ME",
                               "my-placeholder-secret", "short-secret"}) {
    absl::Status status =
        Migrate(url_, CHAT_MIGRATIONS_DIR, {{"chat_auth", password}});
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << password;
    EXPECT_TRUE(absl::StrContains(status.message(), "chat_auth")) << status;
    EXPECT_FALSE(absl::StrContains(status.message(), password)) << status;
  }
  EXPECT_EQ(Query<int64_t>("SELECT count(*) FROM pg_tables "
                           "WHERE tablename = 'schema_migrations'"),
            0);
}

TEST(CheckRolePasswordTest, AcceptsGeneratedPasswords) {
  EXPECT_TRUE(
      CheckRolePassword({"chat_auth", "3f9a0c2be4d17a5566e0b9f3c21d8a7e"})
          .ok());
}

}  // namespace
}  // namespace chat::migrate
