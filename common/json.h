#ifndef CHAT_COMMON_JSON_H_
#define CHAT_COMMON_JSON_H_

// Small JSON needs (log lines, JWT parts, provider chunks) without another
// dependency: writing escapes strings, reading goes through protobuf's JSON
// parser into a google.protobuf.Struct.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace chat {

// `text` as a JSON string literal, quotes included. Invalid UTF-8 bytes are
// replaced by U+FFFD so the output is always valid JSON.
std::string JsonQuote(absl::string_view text);

// Parses a JSON object. INVALID_ARGUMENT when `json` is not one.
absl::StatusOr<google::protobuf::Struct> ParseJsonObject(
    absl::string_view json);

}  // namespace chat

#endif  // CHAT_COMMON_JSON_H_
