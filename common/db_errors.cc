#include "common/db_errors.h"

#include <string>

#include "absl/strings/match.h"
#include "common/log.h"
#include "pqxx/pqxx"

namespace chat {
namespace {

absl::StatusCode CodeOfSqlState(const std::string& state) {
  if (state == "23505") return absl::StatusCode::kAlreadyExists;
  if (state == "23503") return absl::StatusCode::kFailedPrecondition;
  if (absl::StartsWith(state, "40")) return absl::StatusCode::kAborted;
  if (state == "57014" || state == "55P03") {
    return absl::StatusCode::kDeadlineExceeded;
  }
  if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57P") ||
      absl::StartsWith(state, "53") || state == "25P03") {
    return absl::StatusCode::kUnavailable;
  }
  if (absl::StartsWith(state, "22") || absl::StartsWith(state, "54")) {
    return absl::StatusCode::kInvalidArgument;
  }
  return absl::StatusCode::kInternal;
}

const char* MessageOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kAlreadyExists:
      return "already exists";
    case absl::StatusCode::kFailedPrecondition:
      return "a referenced record does not exist";
    case absl::StatusCode::kAborted:
      return "concurrent update, retry";
    case absl::StatusCode::kDeadlineExceeded:
      return "the database took too long, retry later";
    case absl::StatusCode::kUnavailable:
      return "database unavailable, retry later";
    case absl::StatusCode::kInvalidArgument:
      return "a value is out of range";
    default:
      return "internal error";
  }
}

// Logs the database's message at the level the code calls for, and answers
// with a message safe to return.
absl::Status Answer(absl::StatusCode code, const std::string& state,
                    absl::string_view message) {
  if (code == absl::StatusCode::kUnavailable ||
      code == absl::StatusCode::kAborted ||
      code == absl::StatusCode::kDeadlineExceeded) {
    log::Warn("database error", {{"sqlstate", state}, {"error", message}});
  } else if (code != absl::StatusCode::kAlreadyExists &&
             code != absl::StatusCode::kFailedPrecondition) {
    log::Error("database error", {{"sqlstate", state}, {"error", message}});
  }
  return absl::Status(code, MessageOf(code));
}

}  // namespace

absl::StatusCode DbErrorCode(const std::exception& error) {
  // libpqxx reports a lost connection without an SQLSTATE.
  if (dynamic_cast<const pqxx::in_doubt_error*>(&error) != nullptr ||
      dynamic_cast<const pqxx::broken_connection*>(&error) != nullptr ||
      dynamic_cast<const pqxx::statement_completion_unknown*>(&error) !=
          nullptr) {
    return absl::StatusCode::kUnavailable;
  }
  // libpqxx 6 throws these without an SQLSTATE (40001, 40P01).
  if (dynamic_cast<const pqxx::transaction_rollback*>(&error) != nullptr) {
    return absl::StatusCode::kAborted;
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&error)) {
    return CodeOfSqlState(sql->sqlstate());
  }
  return absl::StatusCode::kInternal;
}

absl::Status StatusFromDbError(const std::exception& error) {
  const absl::StatusCode code = DbErrorCode(error);
  if (dynamic_cast<const pqxx::in_doubt_error*>(&error) != nullptr) {
    log::Error("database connection lost during commit",
               {{"error", error.what()}});
    return absl::Status(code, MessageOf(code));
  }
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&error);
  return Answer(code, sql != nullptr ? sql->sqlstate() : "", error.what());
}

absl::Status StatusFromSqlState(const std::string& sqlstate,
                                absl::string_view message) {
  return Answer(CodeOfSqlState(sqlstate), sqlstate, message);
}

}  // namespace chat
