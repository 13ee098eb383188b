#ifndef CHAT_COMMON_DB_READER_H_
#define CHAT_COMMON_DB_READER_H_

// Reads for many calls at once on a few PostgreSQL connections, without a
// thread per call: a thread (or a few) owns the connections, in libpq's
// pipeline mode, and sends each read as soon as it is asked for, behind the
// reads still running on the same connection. A backend then finds its next
// read already waiting instead of sleeping between calls, which halves what
// PostgreSQL spends waking up; and the caller's thread goes back to its
// work at once (a gRPC callback handler answers from `done`). For the hot
// reads (the listings); writes stay with DbPool::Transact.
//
//   reader->Read(user_id, "message_list_asc",
//       [reactor](absl::StatusOr<std::optional<DbRows>> rows) { ... },
//       user_id, conversation_id, after, limit, budget);
//
// Each read is what DbPool::ReadRows is: the account's setting and one
// prepared statement in one implicit transaction, so that the row-level
// security policies show only the user's rows, and an empty answer is
// nullopt (no rows, or no account). A connection that breaks sends its
// reads again on a new one (they only read), up to three times in all.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/db.h"
#include "libpq-fe.h"

namespace chat {

// The rows of one read; the result stays with it.
class DbRows {
 public:
  explicit DbRows(PGresult* result) : result_(result, &PQclear) {}
  int size() const { return PQntuples(result_.get()); }
  const PGresult* result() const { return result_.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> result_;
};

// ColumnReader's twin for DbRows: a row's columns in order, as text.
class DbColumnReader {
 public:
  DbColumnReader(const DbRows& rows, int row, int first = 0)
      : result_(rows.result()), row_(row), column_(first) {}

  absl::string_view Text() {
    const absl::string_view text(PQgetvalue(result_, row_, column_),
                                 PQgetlength(result_, row_, column_));
    ++column_;
    return text;
  }
  std::string String() { return std::string(Text()); }
  // int, int64_t or bool; a NULL or malformed column reads as 0 (false): for
  // NOT NULL columns of those types, which PostgreSQL writes well-formed.
  template <typename T>
  T As() {
    return Parse<T>(Text());
  }
  // The next column as T, nullopt for NULL.
  template <typename T>
  std::optional<T> Optional() {
    const bool null = PQgetisnull(result_, row_, column_) == 1;
    const absl::string_view text = Text();
    if (null) return std::nullopt;
    return Parse<T>(text);
  }

 private:
  template <typename T>
  static T Parse(absl::string_view text);

  const PGresult* result_;
  int row_;
  int column_;
};

class DbReader {
 public:
  struct Options {
    std::string url;  // a libpq URL; a secret, never logged
    int connections = 2;
    // Threads that share the connections, each owning its part: the rows
    // of every answer are read on these threads.
    int threads = 1;
    absl::Duration statement_timeout = absl::Seconds(30);
    // The statements a read may name; each connection prepares them.
    std::vector<PreparedStatement> statements;
  };

  // Starts the thread; connections open on first use.
  static std::unique_ptr<DbReader> Create(Options options);
  // Answers every read not yet answered with UNAVAILABLE, then stops.
  ~DbReader();

  using Rows = absl::StatusOr<std::optional<DbRows>>;
  // Runs on the reader's thread (or the caller's, for a read refused at
  // once): it must not block.
  using Done = absl::AnyInvocable<void(Rows) &&>;

  // The arguments are values (numbers, bools, strings) or std::optional of
  // them (nullopt is NULL).
  template <typename... Args>
  void Read(absl::string_view user_id, const char* statement, Done done,
            const Args&... args) {
    Submit(user_id, statement, {DbArgumentText(args)...}, std::move(done));
  }

 private:
  struct Pending {
    std::string user_id;
    const char* set_user;
    const char* statement;
    std::vector<std::optional<std::string>> arguments;
    Done done;
    int attempts = 0;
  };
  // One thread and the connections it owns (db_reader.cc).
  class Loop;

  explicit DbReader(Options options);
  void Submit(absl::string_view user_id, const char* statement,
              std::vector<std::optional<std::string>> arguments, Done done);

  Options options_;
  // The names of the statements with generic_plan set.
  absl::flat_hash_set<std::string> generic_plans_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<size_t> next_loop_{0};
};

}  // namespace chat

#endif  // CHAT_COMMON_DB_READER_H_
