#include "common/db.h"

#include "absl/strings/str_cat.h"
#include "common/db_statements.h"
#include "common/ids.h"
#include "common/log.h"
#include "libpq-fe.h"

namespace chat {
namespace {

using db_internal::kSetUserIfExists;
using db_internal::kSetUserIfExistsGeneric;
using db_internal::kSetUserIfExistsGenericSql;
using db_internal::kSetUserIfExistsSql;

constexpr int kMaxAttempts = 3;

// Every transaction of a user starts with it, so it is prepared once per
// connection rather than parsed and planned each time. It also tells whether
// the account still exists, so that a deleted account's access tokens stop
// working at once on every route, at no extra round trip.
constexpr char kSetUser[] = "db_set_user";
constexpr char kSetUserSql[] =
    "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1::uuid) "
    "FROM set_config('app.user_id', $1, true)";

// Whether the session of tx is outside any transaction, as libpq sees it.
// transaction_base::abort() swallows a failed ROLLBACK, so only this tells
// that a connection may go back to the pool. libpqxx 6 lets largeobject
// alone reach a transaction's PGconn; its protected accessor is used here.
class SessionProbe : private pqxx::largeobject {
 public:
  static bool Idle(const pqxx::dbtransaction& tx) {
    return PQtransactionStatus(raw_connection(tx)) == PQTRANS_IDLE;
  }
};

// A broken connection before COMMIT committed nothing; ABORTED asks for the
// whole transaction again.
bool IsRetryable(const std::exception& error) {
  return dynamic_cast<const pqxx::broken_connection*>(&error) != nullptr ||
         DbErrorCode(error) == absl::StatusCode::kAborted;
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

DbPool::DbPool(Options options) : options_(std::move(options)) {
  for (const PreparedStatement& statement : options_.statements) {
    if (statement.generic_plan) generic_plans_.insert(statement.name);
  }
}

DbPool::~DbPool() = default;

absl::StatusOr<std::unique_ptr<pqxx::connection>> DbPool::Connect() {
  try {
    auto conn = std::make_unique<pqxx::connection>(options_.url);
    {
      pqxx::nontransaction session(*conn);
      for (const auto& [name, value] :
           {std::pair{"statement_timeout", options_.statement_timeout},
            std::pair{"idle_in_transaction_session_timeout",
                      options_.idle_in_transaction_timeout}}) {
        if (value <= absl::ZeroDuration()) continue;
        session.exec0(absl::StrCat("SET ", name, " = ",
                                   absl::ToInt64Milliseconds(value)));
      }
    }
    conn->prepare(kSetUser, kSetUserSql);
    conn->prepare(kSetUserIfExists, kSetUserIfExistsSql);
    conn->prepare(kSetUserIfExistsGeneric, kSetUserIfExistsGenericSql);
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
  // A user id comes from a verified token; anything else is no account.
  if (!user_id.empty() && !IsUuid(user_id)) return AccountGoneError();
  absl::Status last =
      absl::UnavailableError("database unavailable, retry later");
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Acquire();
    if (!conn.ok()) return conn.status();
    bool committing = false;
    bool rolled_back = false;  // cleanly, after an error the database reported
    bool idle = true;          // the session ended its transaction
    try {
      absl::Status status;
      {
        // The transaction must end (COMMIT or ROLLBACK) while this thread
        // still holds the connection: only then may it go back to the pool.
        pqxx::work tx(**conn);
        try {
          if (!user_id.empty() &&
              !tx.exec_prepared1(kSetUser, std::string(user_id))[0]
                   .as<bool>()) {
            status = AccountGoneError();
          } else {
            status = body(tx);
          }
        } catch (const pqxx::sql_error&) {
          tx.abort();
          rolled_back = SessionProbe::Idle(tx);
          throw;
        }
        if (status.ok()) {
          committing = true;
          tx.commit();
        } else {
          tx.abort();
          idle = SessionProbe::Idle(tx);
        }
      }
      if (!idle) (*conn).reset();  // the ROLLBACK failed: never reused
      Release(*std::move(conn));
      return status;
    } catch (const std::exception& e) {
      // A connection whose transaction did not end cleanly is closed, never
      // handed to another call.
      if (!rolled_back || !(*conn)->is_open()) (*conn).reset();
      Release(*std::move(conn));
      if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
        // The idle connections most likely died with it (a database
        // restart): start afresh.
        DiscardIdle();
      }
      last = StatusFromDbError(e);
      // A row that references the account is refused only when the account
      // went away after the check that opened the transaction.
      if (!user_id.empty() &&
          last.code() == absl::StatusCode::kFailedPrecondition) {
        return AccountGoneError();
      }
      if (committing || !IsRetryable(e)) return last;
    }
  }
  return last;
}

absl::Status AccountGoneError() {
  return absl::UnauthenticatedError("the account no longer exists");
}

absl::StatusOr<std::string> DbPool::QuotedList(
    pqxx::connection_base& conn,
    const std::vector<std::optional<std::string>>& values) {
  std::string list;
  for (const std::optional<std::string>& value : values) {
    if (!list.empty()) list += ", ";
    if (!value) {
      list += "NULL";
    } else if (value->find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("text must not contain NUL bytes");
    } else {
      list += conn.quote(*value);
    }
  }
  return list;
}

absl::StatusOr<std::optional<pqxx::result>> DbPool::ReadRowsWith(
    absl::string_view user_id, const char* statement,
    const Arguments& arguments) {
  if (!IsUuid(user_id)) return AccountGoneError();
  const char* set_user = generic_plans_.contains(statement)
                             ? kSetUserIfExistsGeneric
                             : kSetUserIfExists;
  absl::Status last =
      absl::UnavailableError("database unavailable, retry later");
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Acquire();
    if (!conn.ok()) return conn.status();
    try {
      absl::StatusOr<std::string> list = arguments(**conn);
      if (!list.ok()) {
        Release(*std::move(conn));
        return list.status();
      }
      // EXECUTE finds a statement only once the server has it: libpqxx 6
      // prepares on first use.
      (*conn)->prepare_now(set_user);
      (*conn)->prepare_now(statement);
      pqxx::result rows;
      {
        // No BEGIN: one Query message of several statements is one
        // transaction, which a failure rolls back whole, leaving the
        // session idle.
        pqxx::nontransaction session(**conn);
        rows = session.exec(absl::StrCat(
            "EXECUTE ", set_user, "(", (*conn)->quote(std::string(user_id)),
            "); EXECUTE ", statement, "(", *list, ")"));
      }
      Release(*std::move(conn));
      if (rows.empty()) return std::nullopt;
      return rows;
    } catch (const std::exception& e) {
      const bool broken =
          dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr;
      if (broken) (*conn).reset();
      Release(*std::move(conn));
      if (broken) DiscardIdle();
      last = StatusFromDbError(e);
      if (!IsRetryable(e)) return last;
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

std::string PgTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", time, absl::UTCTimeZone());
}

absl::Time FromPgMicros(int64_t micros) { return absl::FromUnixMicros(micros); }

}  // namespace chat
