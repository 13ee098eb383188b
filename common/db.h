#ifndef CHAT_COMMON_DB_H_
#define CHAT_COMMON_DB_H_

// A bounded pool of PostgreSQL connections and the one way to run a
// transaction. Only storage classes include this header: handlers and domain
// code never see pqxx types.
//
//   ASSIGN_OR_RETURN(User user, pool.Transact<User>(user_id,
//       [&](pqxx::work& tx) -> absl::StatusOr<User> {
//         pqxx::result rows = tx.exec_prepared("user_by_id", user_id);
//         ...
//       }));
//
// Transact retries the whole body on a fresh connection when the connection
// broke before COMMIT (nothing was committed, so a retry cannot duplicate a
// write) and when PostgreSQL asks for a retry (serialization failure,
// deadlock); the body must therefore have no effects outside the
// transaction. A connection that breaks during COMMIT is answered UNAVAILABLE:
// the write was not acknowledged. After a database restart every pooled
// connection is replaced on its next use.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/db_errors.h"
#include "pqxx/pqxx"

namespace chat {

// A named statement that every pooled connection prepares.
struct PreparedStatement {
  const char* name;
  const char* sql;
  // Read through ReadRows with the plan made once for the statement, not
  // planned again for each call's arguments (plan_cache_mode
  // force_generic_plan for that one transaction). For a statement whose best
  // plan is the same whatever the arguments, such as a page in index order,
  // where PostgreSQL's own choice keeps planning every call: a listing of
  // messages spent as long planning as running.
  bool generic_plan = false;
};

// The statements of two storage classes that share one pool.
std::vector<PreparedStatement> WithStatements(
    std::vector<PreparedStatement> first,
    const std::vector<PreparedStatement>& second);

// The text of a statement argument (pqxx's conversion), nullopt for NULL.
template <typename T>
std::optional<std::string> DbArgumentText(const T& value) {
  return pqxx::to_string(value);
}
template <typename T>
std::optional<std::string> DbArgumentText(const std::optional<T>& value) {
  if (!value) return std::nullopt;
  return pqxx::to_string(*value);
}

class DbPool {
 public:
  struct Options {
    std::string url;  // a libpq URL; a secret, never logged
    int size = 8;
    // How long a caller waits for a free connection before UNAVAILABLE.
    absl::Duration acquire_timeout = absl::Seconds(5);
    // Guard rails set on every connection, so that no bug can hold a
    // connection or a lock forever: the longest statement, and the longest a
    // session may sit idle inside a transaction before PostgreSQL ends it.
    // Zero leaves PostgreSQL's (or the role's) setting.
    absl::Duration statement_timeout = absl::Seconds(30);
    absl::Duration idle_in_transaction_timeout = absl::Seconds(60);
    std::vector<PreparedStatement> statements;
  };

  // Connections are opened lazily, so a service can start before its
  // database and report NOT_SERVING until it answers.
  static std::unique_ptr<DbPool> Create(Options options);
  ~DbPool();

  using Body = std::function<absl::Status(pqxx::work&)>;

  // Runs body in one transaction and commits when it returns OK (rolls back
  // otherwise). When user_id is not empty the transaction-local setting
  // app.user_id is set to it (the row-level security policies read it), and
  // the body does not run when no such account exists: UNAUTHENTICATED.
  absl::Status Transact(absl::string_view user_id, const Body& body);

  template <typename T>
  absl::StatusOr<T> Transact(
      absl::string_view user_id,
      const std::function<absl::StatusOr<T>(pqxx::work&)>& body) {
    std::optional<absl::StatusOr<T>> result;
    absl::Status status = Transact(user_id, [&](pqxx::work& tx) {
      result = body(tx);
      return result->status();
    });
    if (!status.ok()) return status;
    return *std::move(result);
  }

  // Runs one prepared statement that only reads, for user_id, in a single
  // round trip, where Transact takes four (BEGIN, the account check, the
  // statement, COMMIT): the account's setting and the statement go to
  // PostgreSQL as one message and run in one implicit transaction, the
  // statement through EXECUTE with its arguments quoted by the connection.
  // For the hot reads (the listings).
  //
  // The setting is made only when the account exists, and the row-level
  // security policies show a user's rows only under it: rows prove the
  // account. An empty answer cannot tell "no rows" from "no account", so it
  // is nullopt, and the caller asks again with Transact, which tells them
  // apart. The arguments are values (numbers, bools, strings) or
  // std::optional of them (nullopt is NULL).
  template <typename... Args>
  absl::StatusOr<std::optional<pqxx::result>> ReadRows(
      absl::string_view user_id, const char* statement, const Args&... args) {
    return ReadRowsWith(
        user_id, statement,
        [&](pqxx::connection_base& conn) -> absl::StatusOr<std::string> {
          std::vector<std::optional<std::string>> values = {
              DbArgumentText(args)...};
          return QuotedList(conn, values);
        });
  }

  // OK when the database answers a trivial query.
  absl::Status Ping();

 private:
  // "'a', NULL, '3'": SQL literals escaped by conn (a text holding a NUL
  // byte, which no literal can carry, is INVALID_ARGUMENT).
  static absl::StatusOr<std::string> QuotedList(
      pqxx::connection_base& conn,
      const std::vector<std::optional<std::string>>& values);
  using Arguments =
      std::function<absl::StatusOr<std::string>(pqxx::connection_base&)>;
  absl::StatusOr<std::optional<pqxx::result>> ReadRowsWith(
      absl::string_view user_id, const char* statement,
      const Arguments& arguments);

  explicit DbPool(Options options);
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Acquire();
  void Release(std::unique_ptr<pqxx::connection> conn);
  void DiscardIdle();
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect();

  Options options_;
  // The names of the statements with generic_plan set.
  absl::flat_hash_set<std::string> generic_plans_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  int open_ = 0;  // idle plus leased connections
};

// Reads the columns of a row in order through one field: row[i] builds a
// field for every column, each a copy of the result's shared pointers, which
// a page of 50 rows of 13 columns notices.
//
//   ColumnReader column(row);
//   record.id = column.String();
//   record.seq = column.As<int64_t>();
class ColumnReader {
 public:
  explicit ColumnReader(const pqxx::row& row, int first = 0)
      : column_(row.begin() + first) {}

  // The next column's text as libpq holds it, valid while the result lives:
  // for a parser, without the temporary string of as<std::string>(). NULL
  // reads as "" (as<std::string>() would throw): for NOT NULL columns.
  absl::string_view Text() {
    const absl::string_view text(column_.c_str(), column_.size());
    ++column_;
    return text;
  }

  // The next column's text as a string (NULL reads as ""), built once: it is
  // moved into its destination.
  std::string String() {
    std::string text(column_.c_str(), column_.size());
    ++column_;
    return text;
  }

  // The next column as T (as<T>(): throws on NULL).
  template <typename T>
  T As() {
    T value = column_.as<T>();
    ++column_;
    return value;
  }

  // The next column as T, nullopt for NULL.
  template <typename T>
  std::optional<T> Optional() {
    std::optional<T> value;
    if (!column_.is_null()) value = column_.as<T>();
    ++column_;
    return value;
  }

 private:
  pqxx::row::const_iterator column_;
};

// UNAUTHENTICATED: the account of a verified token was deleted.
absl::Status AccountGoneError();

// A timestamptz literal for a statement parameter ($n::timestamptz).
std::string PgTime(absl::Time time);

// Reads a column selected as `(extract(epoch from col) * 1000000)::bigint`.
absl::Time FromPgMicros(int64_t micros);

}  // namespace chat

#endif  // CHAT_COMMON_DB_H_
