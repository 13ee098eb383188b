#ifndef CHAT_COMMON_CONFIG_H_
#define CHAT_COMMON_CONFIG_H_

// Configuration comes from flags whose defaults fall back to the environment
// (flag > environment > built-in default); secrets come only from the
// environment or from files, never from flags.
//
//   ABSL_FLAG(std::string, grpc_listen,
//             chat::EnvOr("GRPC_LISTEN", "127.0.0.1:50051"), "...");
//   absl::StatusOr<std::string> url = chat::ReadSecret("DATABASE_URL");

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace chat {

// The environment variable `name`, or `fallback` when it is unset or empty.
std::string EnvOr(const char* name, absl::string_view fallback);
int EnvOr(const char* name, int fallback);
absl::Duration EnvOr(const char* name, absl::Duration fallback);

// The secret in environment variable `name`, or else the contents of the file
// named by `name`_FILE (trailing newlines removed). NOT_FOUND when neither is
// set. The value is never logged.
absl::StatusOr<std::string> ReadSecret(absl::string_view name);

// The whole contents of a file.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace chat

#endif  // CHAT_COMMON_CONFIG_H_
