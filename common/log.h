#ifndef CHAT_COMMON_LOG_H_
#define CHAT_COMMON_LOG_H_

// Structured logs: one JSON object per line on stderr, so that a log
// collector needs no parser of ours. Never pass a secret (password, token,
// key, database URL with a password) as a field.
//
//   chat::log::Info("listening", {{"addr", addr}});
//   chat::log::Error("query failed", {{"request_id", id}, {"error", what}});

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace chat::log {

using Field = std::pair<absl::string_view, absl::string_view>;

void Info(absl::string_view message, std::initializer_list<Field> fields = {});
void Warn(absl::string_view message, std::initializer_list<Field> fields = {});
void Error(absl::string_view message, std::initializer_list<Field> fields = {});

// Logs why a program cannot go on (its code and message) and returns
// EXIT_FAILURE, for main:
//   if (!url.ok()) return chat::log::Failure("no database", url.status());
int Failure(absl::string_view what, const absl::Status& status);

// Every line also carries "service": name.
void SetServiceName(absl::string_view name);

}  // namespace chat::log

#endif  // CHAT_COMMON_LOG_H_
