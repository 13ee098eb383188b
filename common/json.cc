#include "common/json.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/utf8.h"
#include "google/protobuf/util/json_util.h"

namespace chat {
std::string JsonQuote(absl::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  while (!text.empty()) {
    const char c = text[0];
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<uint8_t>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<int>(c));
        } else if (size_t len = Utf8SequenceLength(text); len == 0) {
          out += "\xEF\xBF\xBD";
        } else {
          out.append(text.data(), len);
          text.remove_prefix(len);
          continue;
        }
    }
    text.remove_prefix(1);
  }
  out.push_back('"');
  return out;
}

absl::StatusOr<google::protobuf::Struct> ParseJsonObject(
    absl::string_view json) {
  google::protobuf::Struct parsed;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &parsed,
      options);
  if (!status.ok()) return absl::InvalidArgumentError("malformed JSON object");
  return parsed;
}

}  // namespace chat
