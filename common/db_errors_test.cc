#include "common/db_errors.h"

#include <stdexcept>
#include <string>

#include "gtest/gtest.h"
#include "pqxx/pqxx"

namespace chat {
namespace {

constexpr char kSecretSql[] = "SELECT password_hash FROM users";

absl::Status OfState(const char* sqlstate) {
  return StatusFromDbError(
      pqxx::sql_error("ERROR:  secret detail", kSecretSql, sqlstate));
}

// Every SQLSTATE class the services can meet, by what the caller should do.
TEST(StatusFromDbErrorTest, MapsEverySqlStateClassTheCodeCanMeet) {
  const struct {
    const char* sqlstate;
    absl::StatusCode code;
  } kCases[] = {
      {"23505", absl::StatusCode::kAlreadyExists},       // unique_violation
      {"23503", absl::StatusCode::kFailedPrecondition},  // foreign_key
      {"23502", absl::StatusCode::kInternal},            // not_null: a bug
      {"23514", absl::StatusCode::kInternal},            // check: a bug
      {"40001", absl::StatusCode::kAborted},             // serialization
      {"40P01", absl::StatusCode::kAborted},             // deadlock
      {"57014", absl::StatusCode::kDeadlineExceeded},    // statement_timeout
      {"55P03", absl::StatusCode::kDeadlineExceeded},    // lock_not_available
      {"08006", absl::StatusCode::kUnavailable},         // connection_failure
      {"08001", absl::StatusCode::kUnavailable},         // cannot connect
      {"57P01", absl::StatusCode::kUnavailable},         // admin_shutdown
      {"57P03", absl::StatusCode::kUnavailable},         // cannot_connect_now
      {"25P03", absl::StatusCode::kUnavailable},         // idle-in-transaction
      {"53300", absl::StatusCode::kUnavailable},         // too_many_connections
      {"53100", absl::StatusCode::kUnavailable},         // disk_full
      {"22P02", absl::StatusCode::kInvalidArgument},     // invalid text
      {"22008", absl::StatusCode::kInvalidArgument},     // datetime overflow
      {"22021", absl::StatusCode::kInvalidArgument},     // bad encoding
      {"54000", absl::StatusCode::kInvalidArgument},     // program limit
      {"42501", absl::StatusCode::kInternal},  // insufficient_privilege
      {"42P01", absl::StatusCode::kInternal},  // undefined_table
      {"XX000", absl::StatusCode::kInternal},  // internal_error
      {"P0001", absl::StatusCode::kInternal},  // raise_exception
  };
  for (const auto& c : kCases) {
    absl::Status status = OfState(c.sqlstate);
    EXPECT_EQ(status.code(), c.code) << c.sqlstate;
    EXPECT_EQ(status.message().find("secret"), absl::string_view::npos)
        << c.sqlstate << ": " << status;
    EXPECT_EQ(status.message().find("SELECT"), absl::string_view::npos)
        << c.sqlstate << ": " << status;
  }
}

TEST(StatusFromDbErrorTest, TheTypedExceptionsOfLibpqxxMapLikeTheirStates) {
  EXPECT_EQ(StatusFromDbError(pqxx::unique_violation("x", kSecretSql, "23505"))
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusFromDbError(pqxx::serialization_failure("x")).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(StatusFromDbError(pqxx::deadlock_detected("x")).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(StatusFromDbError(pqxx::statement_completion_unknown("x")).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromDbError(pqxx::broken_connection("gone")).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromDbError(pqxx::in_doubt_error("commit cut off")).code(),
            absl::StatusCode::kUnavailable);
}

TEST(StatusFromDbErrorTest, AnythingElseIsInternalAndSaysNothing) {
  absl::Status status =
      StatusFromDbError(std::runtime_error("/etc/secret/path: boom"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(status.message(), "internal error");
  EXPECT_EQ(DbErrorCode(pqxx::sql_error("x", "", nullptr)),
            absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace chat
