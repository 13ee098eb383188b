#include "services/message/sse_parser.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/strip.h"
#include "common/json.h"

namespace chat::message {
namespace {

// A token count: 0 when absent or not a number; a number beyond int is
// clamped, because casting it would be undefined behaviour (a server may
// send 1e300).
int CountField(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  if (it == s.fields().end()) return 0;
  const double value = it->second.number_value();
  if (std::isnan(value)) return 0;
  return static_cast<int>(
      std::clamp(value, static_cast<double>(std::numeric_limits<int>::min()),
                 static_cast<double>(std::numeric_limits<int>::max())));
}

}  // namespace

bool ChatCompletionsStream::Feed(absl::string_view bytes) {
  pending_.append(bytes.data(), bytes.size());
  size_t start = 0;
  for (size_t end; (end = pending_.find('\n', start)) != std::string::npos;
       start = end + 1) {
    absl::string_view line(pending_.data() + start, end - start);
    line = absl::StripSuffix(line, "\r");
    if (absl::ConsumePrefix(&line, "data:")) {
      if (!HandleData(absl::StripLeadingAsciiWhitespace(line))) return false;
    }  // comments (":") and other SSE fields carry nothing for us
  }
  pending_.erase(0, start);
  return true;
}

// Handles one `data:` payload of the event stream; false stops the transfer.
bool ChatCompletionsStream::HandleData(absl::string_view data) {
  if (data == "[DONE]") {
    done_ = true;
    return true;
  }
  absl::StatusOr<google::protobuf::Struct> chunk = ParseJsonObject(data);
  if (!chunk.ok()) {
    failure_ =
        absl::UnavailableError("the model provider sent a malformed chunk");
    return false;
  }
  const auto& fields = chunk->fields();
  if (auto error = fields.find("error"); error != fields.end()) {
    failure_ = absl::UnavailableError("the model provider reported an error");
    return false;
  }
  if (auto model = fields.find("model");
      model != fields.end() && model->second.has_string_value()) {
    reply_.model = model->second.string_value();
  }
  if (auto usage = fields.find("usage");
      usage != fields.end() && usage->second.has_struct_value()) {
    const auto& u = usage->second.struct_value();
    reply_.usage = {CountField(u, "prompt_tokens"),
                    CountField(u, "completion_tokens"),
                    CountField(u, "total_tokens")};
  }
  auto choices = fields.find("choices");
  if (choices == fields.end() || !choices->second.has_list_value()) return true;
  for (const auto& choice : choices->second.list_value().values()) {
    if (!choice.has_struct_value()) continue;
    // Servers that never send "[DONE]" still end with a finish_reason.
    if (auto finish = choice.struct_value().fields().find("finish_reason");
        finish != choice.struct_value().fields().end() &&
        finish->second.has_string_value()) {
      done_ = true;
    }
    auto delta = choice.struct_value().fields().find("delta");
    if (delta == choice.struct_value().fields().end() ||
        !delta->second.has_struct_value()) {
      continue;
    }
    const auto& delta_fields = delta->second.struct_value().fields();
    auto content = delta_fields.find("content");
    if (content != delta_fields.end() && content->second.has_string_value() &&
        !content->second.string_value().empty()) {
      if (!on_text_(content->second.string_value())) {
        failure_ = absl::CancelledError("the client went away");
        return false;
      }
    }
  }
  return true;
}

}  // namespace chat::message
