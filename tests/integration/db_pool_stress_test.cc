// DbPool under concurrency, against a real PostgreSQL (docs/architecture.md
// "The connection pool": a connection whose transaction did not end cleanly is
// never handed to another call). Many threads share a small pool and run a mix
// of bodies that commit, that return an error, that throw and that only read;
// afterwards every committed write is there, none of the others is, the pool
// still serves, and PostgreSQL shows no connection of the pool's role left idle
// in a transaction. Meant to be run under TSan and ASan too (make
// test-sanitize), where a connection shared by two threads is a report.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/db.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "tests/integration/database_test.h"
#include "tests/integration/test_database.h"

namespace chat {
namespace {

constexpr char kRole[] = "chat_conversation";
constexpr int kThreads = 8;
constexpr int kRoundsPerThread = 150;  // 4 operations each
constexpr int kPoolSize = 3;
// A few seconds even under TSan; a pool that hands one connection to two
// threads can leave both waiting on its socket forever.
constexpr auto kDeadline = std::chrono::seconds(120);

// Aborts the test binary, with a message, unless Done() is called within
// kDeadline: a deadlock then fails the test instead of waiting for ctest.
class Watchdog {
 public:
  Watchdog()
      : thread_([this] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!done_cv_.wait_for(lock, kDeadline, [this] { return done_; })) {
            std::fprintf(stderr,
                         "db_pool_stress_test: the workers are still running "
                         "after %lld s: deadlocked on a shared connection?\n",
                         static_cast<long long>(kDeadline.count()));
            std::abort();
          }
        }) {}
  void Done() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

class DbPoolStressTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    tx.exec0(
        "CREATE TABLE stress_counters (worker int PRIMARY KEY, n int NOT "
        "NULL)");
    tx.exec0(
        "CREATE TABLE stress_rows (worker int NOT NULL, round int NOT NULL, "
        "kind text NOT NULL)");
    tx.exec0(
        absl::StrCat("GRANT SELECT, INSERT, UPDATE ON stress_counters, "
                     "stress_rows TO ",
                     kRole));
    tx.exec0(
        absl::StrCat("INSERT INTO stress_counters "
                     "SELECT g, 0 FROM generate_series(0, ",
                     kThreads - 1, ") g"));
    database_ = tx.exec1("SELECT current_database()")[0].as<std::string>();
    tx.commit();
  }

  // Connections of the pool's role on the test database that sit in an
  // open transaction, as PostgreSQL sees them.
  int IdleInTransaction() {
    pqxx::connection admin(db_->admin_url());
    pqxx::nontransaction tx(admin);
    return tx
        .exec_params1(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
            "AND usename = $2 AND state LIKE 'idle in transaction%'",
            database_, kRole)[0]
        .as<int>();
  }

  template <typename T>
  T AdminQuery(const std::string& sql) {
    pqxx::connection admin(db_->admin_url());
    pqxx::nontransaction tx(admin);
    return tx.exec1(sql)[0].as<T>();
  }

  std::string database_;
};

TEST_F(DbPoolStressTest, MixedOutcomesNeverLeakATransactionOrACommit) {
  std::unique_ptr<DbPool> pool = DbPool::Create(
      {.url = db_->RoleUrl(kRole),
       .size = kPoolSize,
       // Generous: under TSan a round trip is slow, and a timeout here would
       // be a false failure, not the pool misbehaving.
       .acquire_timeout = absl::Seconds(60),
       .statements = {
           {"stress_bump",
            "UPDATE stress_counters SET n = n + 1 WHERE worker = $1"},
           {"stress_count", "SELECT n FROM stress_counters WHERE worker = $1"},
           {"stress_row",
            "INSERT INTO stress_rows (worker, round, kind) VALUES ($1, $2, "
            "$3)"},
       }});

  // Per worker, what it saw go wrong; checked on the main thread.
  std::vector<std::vector<std::string>> problems(kThreads);
  Watchdog watchdog;
  std::vector<std::thread> workers;
  for (int w = 0; w < kThreads; ++w) {
    workers.emplace_back([&, w] {
      std::vector<std::string>& mine = problems[w];
      int committed = 0;
      for (int round = 0; round < kRoundsPerThread; ++round) {
        // Commits: a counter of this worker and a row.
        absl::Status status = pool->Transact("", [&](pqxx::work& tx) {
          tx.exec_prepared0("stress_bump", w);
          tx.exec_prepared0("stress_row", w, round, "commit");
          return absl::OkStatus();
        });
        if (status.ok()) {
          ++committed;
        } else {
          mine.push_back(absl::StrCat("commit: ", status.ToString()));
        }

        // Writes, then fails: the body's error comes back as it is, and
        // nothing of the transaction stays.
        status = pool->Transact("", [&](pqxx::work& tx) {
          tx.exec_prepared0("stress_row", w, round, "error");
          tx.exec_prepared0("stress_bump", w);
          return absl::FailedPreconditionError("body said no");
        });
        if (status != absl::FailedPreconditionError("body said no")) {
          mine.push_back(absl::StrCat("error: ", status.ToString()));
        }

        // Writes, then throws something that is not a database error.
        status = pool->Transact("", [&](pqxx::work& tx) -> absl::Status {
          tx.exec_prepared0("stress_row", w, round, "throw");
          tx.exec_prepared0("stress_bump", w);
          throw std::runtime_error("body threw");
        });
        if (status.code() != absl::StatusCode::kInternal) {
          mine.push_back(absl::StrCat("throw: ", status.ToString()));
        }

        // Reads its own counter: exactly the commits it made so far.
        absl::StatusOr<int> seen =
            pool->Transact<int>("", [&](pqxx::work& tx) -> absl::StatusOr<int> {
              return tx.exec_prepared1("stress_count", w)[0].as<int>();
            });
        if (!seen.ok()) {
          mine.push_back(absl::StrCat("read: ", seen.status().ToString()));
        } else if (*seen != committed) {
          mine.push_back(absl::StrCat("read: round ", round, " saw ", *seen,
                                      " commits, made ", committed));
        }
      }
    });
  }
  for (std::thread& t : workers) t.join();
  watchdog.Done();

  for (int w = 0; w < kThreads; ++w) {
    EXPECT_TRUE(problems[w].empty())
        << "worker " << w << ": " << problems[w].size() << " problems, first "
        << problems[w].front();
  }
  const int expected = kThreads * kRoundsPerThread;
  EXPECT_EQ(AdminQuery<int>("SELECT sum(n) FROM stress_counters"), expected);
  EXPECT_EQ(AdminQuery<int>("SELECT count(*) FROM stress_rows WHERE kind = "
                            "'commit'"),
            expected);
  EXPECT_EQ(AdminQuery<int>("SELECT count(*) FROM stress_rows WHERE kind <> "
                            "'commit'"),
            0);

  // Still serving, on every one of its connections, and none of them holds
  // a transaction open between calls.
  std::vector<std::thread> pings;
  std::atomic<int> ok_pings{0};
  for (int i = 0; i < kPoolSize * 2; ++i) {
    pings.emplace_back([&] {
      if (pool->Ping().ok()) ++ok_pings;
    });
  }
  for (std::thread& t : pings) t.join();
  EXPECT_EQ(ok_pings.load(), kPoolSize * 2);
  EXPECT_EQ(IdleInTransaction(), 0);
}

}  // namespace
}  // namespace chat

namespace chat {
namespace {

// A user's transaction opens by checking that the account exists; an
// account deleted after that check shows as a row that references it and
// is refused: the caller hears UNAUTHENTICATED, like every other call of a
// deleted account, and the connection stays usable.
TEST_F(DbPoolStressTest,
       AnAccountDeletedDuringTheTransactionIsUnauthenticated) {
  constexpr char kUser[] = "0190f3a0-0000-7000-8000-0000000000c1";
  {
    pqxx::connection admin(db_->admin_url());
    pqxx::work tx(admin);
    tx.exec_params0(
        "INSERT INTO users (id, username, email, password_hash, created_at, "
        "updated_at) VALUES ($1, 'carol', 'carol@example.com', 'x', now(), "
        "now())",
        std::string(kUser));
    tx.commit();
  }
  // The superuser's pool, so that the body can delete the account itself.
  std::unique_ptr<DbPool> pool =
      DbPool::Create({.url = db_->admin_url(), .size = 1});
  absl::Status status = pool->Transact(kUser, [&](pqxx::work& tx) {
    tx.exec_params0("DELETE FROM users WHERE id = $1", std::string(kUser));
    tx.exec_params0(
        "INSERT INTO conversations (user_id, id, title, untitled, created_at, "
        "updated_at) VALUES ($1, gen_random_uuid(), 't', false, now(), now())",
        std::string(kUser));
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  // The deletion was rolled back with the rest: the account is still there.
  EXPECT_TRUE(
      pool->Transact(kUser, [](pqxx::work&) { return absl::OkStatus(); }).ok());
  EXPECT_TRUE(pool->Ping().ok());
}

}  // namespace
}  // namespace chat
