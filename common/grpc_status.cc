#include "common/grpc_status.h"

#include <optional>
#include <string>

#include "common/errors.h"
#include "google/protobuf/any.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace chat {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const std::string message(status.message());

  google::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  if (std::vector<FieldViolation> violations = ViolationsOf(status);
      !violations.empty()) {
    google::rpc::BadRequest bad_request;
    for (const FieldViolation& v : violations) {
      google::rpc::BadRequest::FieldViolation* out =
          bad_request.add_field_violations();
      out->set_field(v.field);
      out->set_description(v.description);
    }
    details.add_details()->PackFrom(bad_request);
  }
  if (std::optional<absl::Duration> wait = RetryAfterOf(status)) {
    google::rpc::RetryInfo retry;
    const int64_t millis = absl::ToInt64Milliseconds(*wait);
    retry.mutable_retry_delay()->set_seconds(millis / 1000);
    retry.mutable_retry_delay()->set_nanos(
        static_cast<int32_t>((millis % 1000) * 1000000));
    details.add_details()->PackFrom(retry);
  }
  if (details.details_size() == 0) return grpc::Status(code, message);
  return grpc::Status(code, message, details.SerializeAsString());
}

void ToErrorEvent(const absl::Status& status, const std::string& request_id,
                  chat::v1::Error* out) {
  const grpc::Status wire = ToGrpcStatus(status);
  out->set_code(absl::StatusCodeToString(
      static_cast<absl::StatusCode>(wire.error_code())));
  out->set_message(wire.error_message());
  out->set_request_id(request_id);
  google::rpc::Status details;
  if (!details.ParseFromString(wire.error_details())) return;
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::BadRequest bad_request;
    if (!any.UnpackTo(&bad_request)) continue;
    for (const auto& v : bad_request.field_violations()) {
      chat::v1::FieldViolation* detail = out->add_details();
      detail->set_field(v.field());
      detail->set_description(v.description());
    }
  }
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace chat
