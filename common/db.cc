#include "common/db.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace chat {
namespace {

constexpr int kMaxAttempts = 3;

// Every transaction of a user starts with it, so it is prepared once per
// connection rather than parsed and planned each time.
constexpr char kSetUser[] = "db_set_user";
constexpr char kSetUserSql[] = "SELECT set_config('app.user_id', $1, true)";

bool IsRetryable(const std::exception& error) {
  return dynamic_cast<const pqxx::broken_connection*>(&error) != nullptr ||
         dynamic_cast<const pqxx::serialization_failure*>(&error) != nullptr ||
         dynamic_cast<const pqxx::deadlock_detected*>(&error) != nullptr;
}

}  // namespace

std::vector<PreparedStatement> WithStatements(
    std::vector<PreparedStatement> first,
    const std::vector<PreparedStatement>& second) {
  first.insert(first.end(), second.begin(), second.end());
  return first;
}

std::unique_ptr<DbPool> DbPool::Create(Options options) {
  return std::unique_ptr<DbPool>(new DbPool(std::move(options)));
}

DbPool::DbPool(Options options) : options_(std::move(options)) {}

DbPool::~DbPool() = default;

absl::StatusOr<std::unique_ptr<pqxx::connection>> DbPool::Connect() {
  try {
    auto conn = std::make_unique<pqxx::connection>(options_.url);
    conn->prepare(kSetUser, kSetUserSql);
    for (const PreparedStatement& statement : options_.statements) {
      conn->prepare(statement.name, statement.sql);
    }
    return conn;
  } catch (const std::exception& e) {
    return StatusFromDbError(e);
  }
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> DbPool::Acquire() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    const bool got = available_.wait_for(
        lock, absl::ToChronoNanoseconds(options_.acquire_timeout),
        [this] { return !idle_.empty() || open_ < options_.size; });
    if (!got) return absl::UnavailableError("database busy, retry later");
    if (!idle_.empty()) {
      std::unique_ptr<pqxx::connection> conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
    ++open_;  // reserve a slot, connect outside the lock
  }
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Connect();
  if (!conn.ok()) Release(nullptr);
  return conn;
}

// A null connection gives its slot back.
void DbPool::Release(std::unique_ptr<pqxx::connection> conn) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (conn != nullptr && conn->is_open()) {
      idle_.push_back(std::move(conn));
    } else {
      --open_;
    }
  }
  available_.notify_one();
}

void DbPool::DiscardIdle() {
  std::vector<std::unique_ptr<pqxx::connection>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ -= static_cast<int>(idle_.size());
    dropped.swap(idle_);
  }
  available_.notify_all();
}

absl::Status DbPool::Transact(absl::string_view user_id, const Body& body) {
  absl::Status last =
      absl::UnavailableError("database unavailable, retry later");
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Acquire();
    if (!conn.ok()) return conn.status();
    bool committing = false;
    try {
      pqxx::work tx(**conn);
      if (!user_id.empty()) {
        tx.exec_prepared(kSetUser, std::string(user_id));
      }
      absl::Status status = body(tx);
      if (status.ok()) {
        committing = true;
        tx.commit();
      }
      Release(*std::move(conn));
      return status;
    } catch (const std::exception& e) {
      const bool broken =
          dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr;
      if (broken) {
        // A connection that failed is never reused, and the idle ones most
        // likely died with it (a database restart): start afresh.
        Release(nullptr);
        DiscardIdle();
      } else {
        Release(*std::move(conn));
      }
      last = StatusFromDbError(e);
      if (committing || !IsRetryable(e)) return last;
    }
  }
  return last;
}

absl::Status DbPool::Ping() {
  return Transact("", [](pqxx::work& tx) {
    tx.exec("SELECT 1");
    return absl::OkStatus();
  });
}

absl::Status StatusFromDbError(const std::exception& error) {
  if (dynamic_cast<const pqxx::unique_violation*>(&error) != nullptr) {
    return absl::AlreadyExistsError("already exists");
  }
  if (dynamic_cast<const pqxx::foreign_key_violation*>(&error) != nullptr) {
    return absl::FailedPreconditionError("a referenced record does not exist");
  }
  if (dynamic_cast<const pqxx::serialization_failure*>(&error) != nullptr ||
      dynamic_cast<const pqxx::deadlock_detected*>(&error) != nullptr) {
    return absl::AbortedError("concurrent update, retry");
  }
  if (dynamic_cast<const pqxx::in_doubt_error*>(&error) != nullptr) {
    log::Error("database connection lost during commit",
               {{"error", error.what()}});
    return absl::UnavailableError("database unavailable, retry later");
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&error) != nullptr) {
    log::Warn("database connection failed", {{"error", error.what()}});
    return absl::UnavailableError("database unavailable, retry later");
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&error)) {
    log::Error("database error",
               {{"sqlstate", sql->sqlstate()}, {"error", error.what()}});
  } else {
    log::Error("database error", {{"error", error.what()}});
  }
  return absl::InternalError("internal error");
}

std::string PgTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", time, absl::UTCTimeZone());
}

absl::Time FromPgMicros(int64_t micros) { return absl::FromUnixMicros(micros); }

}  // namespace chat
