#ifndef CHAT_COMMON_ERRORS_H_
#define CHAT_COMMON_ERRORS_H_

// Errors that carry the details docs/api.md's envelope shows: every offending
// field of a request, and how long to wait before a retry. They travel as
// absl::Status payloads and become google.rpc.BadRequest / RetryInfo details
// at the gRPC edge (grpc_status.h).

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace chat {

struct FieldViolation {
  std::string field;
  std::string description;

  friend bool operator==(const FieldViolation&,
                         const FieldViolation&) = default;
};

// Collects every violation of a request, so that one answer names them all.
//
//   FieldViolations violations;
//   if (name.empty()) violations.Add("name", "must not be empty");
//   RETURN_IF_ERROR(violations.ToStatus());
class FieldViolations {
 public:
  void Add(absl::string_view field, absl::string_view description);
  bool empty() const { return violations_.empty(); }
  const std::vector<FieldViolation>& list() const { return violations_; }
  // OK when empty, else INVALID_ARGUMENT "validation failed" with the list.
  absl::Status ToStatus() const;

 private:
  std::vector<FieldViolation> violations_;
};

// INVALID_ARGUMENT (or another code) with the given violations attached.
absl::Status ErrorWithViolations(absl::StatusCode code,
                                 absl::string_view message,
                                 const std::vector<FieldViolation>& violations);

// The violations attached to status; empty when there are none.
std::vector<FieldViolation> ViolationsOf(const absl::Status& status);

// RESOURCE_EXHAUSTED that asks the caller to wait retry_after.
absl::Status ResourceExhaustedRetryAfter(absl::string_view message,
                                         absl::Duration retry_after);

// The wait attached by ResourceExhaustedRetryAfter, if any.
std::optional<absl::Duration> RetryAfterOf(const absl::Status& status);

}  // namespace chat

#endif  // CHAT_COMMON_ERRORS_H_
