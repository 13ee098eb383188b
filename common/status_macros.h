#ifndef CHAT_COMMON_STATUS_MACROS_H_
#define CHAT_COMMON_STATUS_MACROS_H_

// RETURN_IF_ERROR and ASSIGN_OR_RETURN, which Debian's Abseil (20220623) does
// not ship yet.
//
//   RETURN_IF_ERROR(Validate(request));
//   ASSIGN_OR_RETURN(User user, storage.FindUser(id));

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CHAT_STATUS_CONCAT_INNER_(a, b) a##b
#define CHAT_STATUS_CONCAT_(a, b) CHAT_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                     \
  do {                                                            \
    if (::absl::Status chat_status_ = (expr); !chat_status_.ok()) \
      return chat_status_;                                        \
  } while (false)

#define ASSIGN_OR_RETURN(lhs, expr)                                          \
  CHAT_ASSIGN_OR_RETURN_IMPL_(CHAT_STATUS_CONCAT_(chat_statusor_, __LINE__), \
                              lhs, expr)

#define CHAT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)   \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // CHAT_COMMON_STATUS_MACROS_H_
