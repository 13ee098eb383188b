#include "deploy/migrate/migrator.h"

#include <libpq-fe.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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

// The first file of the no-transaction tests: `source` rows to copy into
// `target`, and a procedure that copies them `batch` rows at a time, each
// batch committed on its own. It skips rows already copied, so a run cut off
// part-way can simply run again. `xid` tells the batches' transactions apart.
constexpr char kCopyInBatches[] = R"sql(
CREATE TABLE source (id int PRIMARY KEY, v int);
INSERT INTO source SELECT g, g FROM generate_series(1, 6) g;
CREATE TABLE target (
  id  int PRIMARY KEY,
  v   int NOT NULL,
  xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE PROCEDURE copy_rows(batch int) LANGUAGE plpgsql AS $$
DECLARE
  copied int;
BEGIN
  LOOP
    INSERT INTO target (id, v)
      SELECT id, v FROM source s
      WHERE NOT EXISTS (SELECT FROM target t WHERE t.id = s.id)
      ORDER BY id LIMIT batch;
    GET DIAGNOSTICS copied = ROW_COUNT;
    EXIT WHEN copied = 0;
    COMMIT;
  END LOOP;
END
$$;
)sql";

TEST(MigratorCreateTest, NoTransactionMarkerCountsOnlyAsTheWholeFirstLine) {
  TempDir dir;
  const std::string marker = kNoTransactionMarker;
  dir.Write("0001_marked.sql", marker + "\nCALL p();\n");
  dir.Write("0002_only_the_marker.sql", marker);
  dir.Write("0003_second_line.sql", "-- comment\n" + marker + "\nCALL p();");
  dir.Write("0004_leading_space.sql", " " + marker + "\nCALL p();");
  dir.Write("0005_trailing_space.sql", marker + " \nCALL p();");
  dir.Write("0006_crlf.sql", marker + "\r\nCALL p();");
  dir.Write("0007_more_on_the_line.sql", marker + " CALL p();");
  dir.Write("0008_upper_case.sql",
            "-- CHAT-MIGRATE: NO-TRANSACTION\nCALL p();");
  dir.Write("0009_plain.sql", "CALL p();");
  absl::StatusOr<Migrator> migrator = Migrator::Create(dir.path().string());
  ASSERT_TRUE(migrator.ok()) << migrator.status();
  std::vector<int> marked;
  for (const Migration& m : migrator->migrations()) {
    if (m.no_transaction) marked.push_back(m.version);
    EXPECT_EQ(m.checksum, Sha256Hex(m.sql)) << m.filename;
  }
  EXPECT_EQ(marked, (std::vector<int>{1, 2}));
}

TEST_F(MigratorTest, NoTransactionFileCallsAProcedureThatCommitsInBatches) {
  TempDir dir;
  dir.Write("0001_copy_rows.sql", kCopyInBatches);
  dir.Write("0002_copy.sql", absl::StrCat(kNoTransactionMarker,
                                          "\n-- Copies in batches of two.\n"
                                          "CALL copy_rows(2);\n"));
  dir.Write("0003_after.sql", "CREATE TABLE after_copy (v int);");
  absl::StatusOr<Migrator> migrator = Migrator::Create(dir.path().string());
  ASSERT_TRUE(migrator.ok()) << migrator.status();
  ASSERT_TRUE(migrator->migrations()[1].no_transaction);

  std::vector<int> seen;
  ApplyOptions options;
  options.on_applied = [&seen](const Migration& m, absl::Duration) {
    seen.push_back(m.version);
  };
  absl::StatusOr<MigrationReport> report = migrator->Apply(url_, {}, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->applied, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(Query<int>("SELECT count(*) FROM target"), 6);
  // Three batches, each committed in a transaction of its own.
  EXPECT_EQ(Query<int>("SELECT count(DISTINCT xid) FROM target"), 3);
  EXPECT_EQ(Query<std::string>(
                "SELECT checksum FROM schema_migrations WHERE version = 2"),
            migrator->migrations()[1].checksum);
  EXPECT_EQ(AppliedCount(), 3);

  // Recorded like any other file: the next run does nothing, and editing it
  // is refused.
  absl::StatusOr<MigrationReport> again = migrator->Apply(url_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->applied.empty());
  EXPECT_EQ(again->already, (std::vector<int>{1, 2, 3}));
  dir.Write("0002_copy.sql",
            absl::StrCat(kNoTransactionMarker, "\nCALL copy_rows(3);\n"));
  absl::Status edited = Migrate(url_, dir.path().string());
  EXPECT_EQ(edited.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(edited.message(), "0002_copy.sql")) << edited;
  EXPECT_TRUE(absl::StrContains(edited.message(), "changed")) << edited;
}

TEST_F(MigratorTest, FailedNoTransactionFileKeepsItsCommitsAndRunsAgain) {
  TempDir dir;
  dir.Write("0001_copy_rows.sql", kCopyInBatches);
  // Row 4 cannot be copied (target.v is NOT NULL), so the second batch fails
  // after the first has committed.
  dir.Write("0002_bad_row.sql", "UPDATE source SET v = NULL WHERE id = 4;");
  dir.Write("0003_copy.sql",
            absl::StrCat(kNoTransactionMarker, "\nCALL copy_rows(2);\n"));
  dir.Write("0004_after.sql", "CREATE TABLE after_copy (v int);");
  absl::StatusOr<Migrator> migrator = Migrator::Create(dir.path().string());
  ASSERT_TRUE(migrator.ok()) << migrator.status();

  std::vector<int> seen;
  ApplyOptions options;
  options.on_applied = [&seen](const Migration& m, absl::Duration) {
    seen.push_back(m.version);
  };
  absl::StatusOr<MigrationReport> failed = migrator->Apply(url_, {}, options);
  ASSERT_FALSE(failed.ok());
  const absl::Status& status = failed.status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "0003_copy.sql")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "no-transaction")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "committed part of its work"))
      << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "23502")) << status;
  EXPECT_FALSE(absl::StrContains(status.message(), "rolled back")) << status;
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  // The first batch stays; the file and the ones after it are not recorded.
  EXPECT_EQ(Query<std::string>(
                "SELECT string_agg(id::text, ',' ORDER BY id) FROM target"),
            "1,2");
  EXPECT_EQ(Query<std::string>("SELECT string_agg(version::text, ',' "
                               "ORDER BY version) FROM schema_migrations"),
            "1,2");
  EXPECT_EQ(Query<int>("SELECT count(*) FROM pg_tables "
                       "WHERE tablename = 'after_copy'"),
            0);

  // Fix the cause; the same file runs again and copies only the rest.
  {
    pqxx::connection conn(url_);
    pqxx::nontransaction tx(conn);
    tx.exec0("UPDATE source SET v = 4 WHERE id = 4");
  }
  absl::StatusOr<MigrationReport> fixed = migrator->Apply(url_, {}, options);
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->applied, (std::vector<int>{3, 4}));
  EXPECT_EQ(fixed->already, (std::vector<int>{1, 2}));
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(Query<std::string>(
                "SELECT string_agg(id::text, ',' ORDER BY id) FROM target"),
            "1,2,3,4,5,6");
  EXPECT_EQ(Query<int>("SELECT count(DISTINCT xid) FROM target"), 3);
  EXPECT_EQ(AppliedCount(), 4);
}

TEST_F(MigratorTest, MarkerNotOnTheFirstLineRunsInATransaction) {
  TempDir dir;
  dir.Write("0001_copy_rows.sql", kCopyInBatches);
  dir.Write("0002_copy.sql",
            absl::StrCat("-- Copies in batches.\n", kNoTransactionMarker,
                         "\nCALL copy_rows(2);\n"));
  absl::Status status = Migrate(url_, dir.path().string());
  // COMMIT inside a transaction block fails, and nothing of the file stays.
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "0002_copy.sql")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "rolled back")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "2D000")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "first line")) << status;
  EXPECT_EQ(Query<int>("SELECT count(*) FROM target"), 0);
  EXPECT_EQ(AppliedCount(), 1);

  // Never applied, so it may still be edited: with the marker first it runs.
  dir.Write("0002_copy.sql", absl::StrCat(kNoTransactionMarker,
                                          "\n-- Copies in batches.\n"
                                          "CALL copy_rows(2);\n"));
  absl::Status fixed = Migrate(url_, dir.path().string());
  EXPECT_TRUE(fixed.ok()) << fixed;
  EXPECT_EQ(Query<int>("SELECT count(*) FROM target"), 6);
  EXPECT_EQ(AppliedCount(), 2);
}

TEST_F(MigratorTest, NoTransactionFileWithTwoStatementsFailsAndSaysWhy) {
  TempDir dir;
  dir.Write("0001_copy_rows.sql", kCopyInBatches);
  dir.Write("0002_copy.sql", absl::StrCat(kNoTransactionMarker,
                                          "\nCALL copy_rows(2);\n"
                                          "SELECT 1;\n"));
  absl::Status status = Migrate(url_, dir.path().string());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "0002_copy.sql")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "exactly one statement"))
      << status;
  EXPECT_FALSE(absl::StrContains(status.message(), "rolled back")) << status;
  EXPECT_EQ(AppliedCount(), 1);
}

TEST_F(MigratorTest, NoTransactionFileCanCreateAnIndexConcurrently) {
  TempDir dir;
  dir.Write("0001_create.sql", "CREATE TABLE t (v int);");
  dir.Write("0002_index.sql",
            absl::StrCat(kNoTransactionMarker,
                         "\nCREATE INDEX CONCURRENTLY t_v_idx ON t (v);\n"));
  absl::Status status = Migrate(url_, dir.path().string());
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(
      Query<bool>("SELECT indisvalid FROM pg_index "
                  "WHERE indexrelid = 't_v_idx'::regclass"));
  EXPECT_EQ(AppliedCount(), 2);
}

// CREATE INDEX CONCURRENTLY waits for every transaction older than its
// build, so a second run that started during the build and is waiting for
// the advisory lock must not be running a statement (which holds a
// snapshot) while it waits: the two would deadlock and PostgreSQL would
// cancel the build, leaving an invalid index.
TEST_F(MigratorTest, RunWaitingForTheLockDoesNotDeadlockAConcurrentIndexBuild) {
  {
    pqxx::connection admin(server_url_);
    pqxx::nontransaction tx(admin);
    // Deadlocks are found after 100 ms instead of 1 s.
    tx.exec0(absl::StrCat("ALTER DATABASE ", tx.quote_name(database_),
                          " SET deadlock_timeout = '100ms'"));
  }
  TempDir dir;
  dir.Write("0001_create.sql", "CREATE TABLE t (v int);");
  ASSERT_TRUE(Migrate(url_, dir.path().string()).ok());
  dir.Write("0002_index.sql",
            absl::StrCat(kNoTransactionMarker,
                         "\nCREATE INDEX CONCURRENTLY t_v_idx ON t (v);\n"));
  absl::StatusOr<Migrator> migrator = Migrator::Create(dir.path().string());
  ASSERT_TRUE(migrator.ok()) << migrator.status();

  // An open writing transaction holds the build up at its start, while the
  // first run holds the advisory lock.
  pqxx::connection writer(url_);
  pqxx::work writing(writer);
  writing.exec0("INSERT INTO t VALUES (1)");
  absl::StatusOr<MigrationReport> first = absl::UnknownError("not run");
  std::thread first_run([&] { first = migrator->Apply(url_); });
  auto build_waits = [this] {
    return Query<int>(
               "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
               "'%CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock' "
               "AND pid <> pg_backend_pid()") > 0;
  };
  for (int i = 0; i < 500 && !build_waits(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(build_waits());

  // A second run starts and waits for the lock for longer than
  // deadlock_timeout; then the build goes on, and later waits for the
  // transactions older than it.
  absl::StatusOr<MigrationReport> second = absl::UnknownError("not run");
  std::thread second_run([&] { second = migrator->Apply(url_); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  writing.commit();
  first_run.join();
  second_run.join();

  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->applied, (std::vector<int>{2}));
  EXPECT_TRUE(second->applied.empty());
  EXPECT_EQ(second->already, (std::vector<int>{1, 2}));
  EXPECT_TRUE(
      Query<bool>("SELECT indisvalid FROM pg_index "
                  "WHERE indexrelid = 't_v_idx'::regclass"));
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
