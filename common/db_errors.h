#ifndef CHAT_COMMON_DB_ERRORS_H_
#define CHAT_COMMON_DB_ERRORS_H_

// The one boundary between database errors and absl::Status. Codes say what
// the caller should do (docs/architecture.md "Errors"):
//
//   unique violation (23505)              ALREADY_EXISTS
//   foreign-key violation (23503)         FAILED_PRECONDITION
//   serialization failure, deadlock (40)  ABORTED: retry the transaction
//   statement or lock timeout (57014,
//     55P03)                              DEADLINE_EXCEEDED
//   connection lost or refused (08),
//     server shutting down (57P0x),
//     idle-in-transaction timeout
//     (25P03), out of resources (53)      UNAVAILABLE: retry later
//   COMMIT cut off (in doubt)             UNAVAILABLE, and logged as an error
//   data exceptions (22), limits (54)     INVALID_ARGUMENT: a value no check
//                                         caught before; logged as an error
//   anything else                         INTERNAL
//
// The database's own message is logged, never returned: it may hold SQL or
// data. Only storage code and the migrator include this (through db.h).

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace chat {

// The code alone, with no logging: for callers that write their own message
// (the migrator's, for operators).
absl::StatusCode DbErrorCode(const std::exception& error);

// The code with a message safe to answer with; logs the database's message.
absl::Status StatusFromDbError(const std::exception& error);

// The same for an error libpq reported with its SQLSTATE and message.
absl::Status StatusFromSqlState(const std::string& sqlstate,
                                absl::string_view message);

}  // namespace chat

#endif  // CHAT_COMMON_DB_ERRORS_H_
