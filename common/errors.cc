#include "common/errors.h"

#include <cstdint>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace chat {
namespace {

// Payload keys; the values are our own simple encodings, turned into the
// standard google.rpc details only at the gRPC edge, so that domain code
// needs no protobuf.
constexpr char kViolationsPayload[] = "chat.v1/field-violations";
constexpr char kRetryAfterPayload[] = "chat.v1/retry-after-ms";

// Violations are encoded as "field\x1fdescription\x1e...": neither separator
// can appear in a field name or in our descriptions.
constexpr char kUnitSeparator = '\x1f';
constexpr char kRecordSeparator = '\x1e';

}  // namespace

void FieldViolations::Add(absl::string_view field,
                          absl::string_view description) {
  violations_.push_back({std::string(field), std::string(description)});
}

absl::Status FieldViolations::ToStatus() const {
  if (violations_.empty()) return absl::OkStatus();
  return ErrorWithViolations(absl::StatusCode::kInvalidArgument,
                             "validation failed", violations_);
}

absl::Status ErrorWithViolations(
    absl::StatusCode code, absl::string_view message,
    const std::vector<FieldViolation>& violations) {
  absl::Status status(code, message);
  std::string encoded;
  for (const FieldViolation& v : violations) {
    encoded.append(v.field).push_back(kUnitSeparator);
    encoded.append(v.description).push_back(kRecordSeparator);
  }
  status.SetPayload(kViolationsPayload, absl::Cord(encoded));
  return status;
}

std::vector<FieldViolation> ViolationsOf(const absl::Status& status) {
  std::vector<FieldViolation> violations;
  absl::optional<absl::Cord> payload = status.GetPayload(kViolationsPayload);
  if (!payload) return violations;
  std::string encoded(*payload);
  for (absl::string_view record :
       absl::StrSplit(encoded, kRecordSeparator, absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(record, absl::MaxSplits(kUnitSeparator, 1));
    violations.push_back({std::string(parts.first), std::string(parts.second)});
  }
  return violations;
}

absl::Status ResourceExhaustedRetryAfter(absl::string_view message,
                                         absl::Duration retry_after) {
  absl::Status status = absl::ResourceExhaustedError(message);
  status.SetPayload(kRetryAfterPayload,
                    absl::Cord(std::to_string(absl::ToInt64Milliseconds(
                        absl::Ceil(retry_after, absl::Milliseconds(1))))));
  return status;
}

std::optional<absl::Duration> RetryAfterOf(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kRetryAfterPayload);
  int64_t millis = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &millis)) {
    return std::nullopt;
  }
  return absl::Milliseconds(millis);
}

}  // namespace chat
