#include "common/grpc_status.h"

#include "common/errors.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

TEST(GrpcStatusTest, OkIsOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(GrpcStatusTest, EveryCodeKeepsItsNumberAndMessage) {
  const std::pair<absl::StatusCode, grpc::StatusCode> kCodes[] = {
      {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
      {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN},
      {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
      {absl::StatusCode::kDeadlineExceeded,
       grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
      {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
      {absl::StatusCode::kPermissionDenied,
       grpc::StatusCode::PERMISSION_DENIED},
      {absl::StatusCode::kResourceExhausted,
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::StatusCode::kFailedPrecondition,
       grpc::StatusCode::FAILED_PRECONDITION},
      {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED},
      {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE},
      {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
      {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL},
      {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
      {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS},
      {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED},
  };
  for (const auto& [absl_code, grpc_code] : kCodes) {
    grpc::Status status = ToGrpcStatus(absl::Status(absl_code, "why"));
    EXPECT_EQ(status.error_code(), grpc_code)
        << absl::StatusCodeToString(absl_code);
    EXPECT_EQ(status.error_message(), "why");
    EXPECT_TRUE(status.error_details().empty());
    absl::Status back = FromGrpcStatus(status);
    EXPECT_EQ(back.code(), absl_code);
    EXPECT_EQ(back.message(), "why");
  }
}

TEST(GrpcStatusTest, ViolationsBecomeBadRequest) {
  FieldViolations violations;
  violations.Add("email", "must be a valid address");
  violations.Add("password", "must contain a digit");
  grpc::Status status = ToGrpcStatus(violations.ToStatus());
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  EXPECT_EQ(details.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(details.message(), "validation failed");
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  ASSERT_EQ(bad_request.field_violations_size(), 2);
  EXPECT_EQ(bad_request.field_violations(0).field(), "email");
  EXPECT_EQ(bad_request.field_violations(1).description(),
            "must contain a digit");
}

TEST(GrpcStatusTest, RetryAfterBecomesRetryInfo) {
  grpc::Status status = ToGrpcStatus(
      ResourceExhaustedRetryAfter("too many failed logins", absl::Seconds(90)));
  ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  google::rpc::RetryInfo retry;
  ASSERT_EQ(details.details_size(), 1);
  ASSERT_TRUE(details.details(0).UnpackTo(&retry));
  EXPECT_EQ(retry.retry_delay().seconds(), 90);
  EXPECT_EQ(retry.retry_delay().nanos(), 0);
}

}  // namespace
}  // namespace chat

namespace chat {
namespace {

// A stream's error event says what the same status says at a call's end.
TEST(GrpcStatusTest, AnErrorEventCarriesWhatTheStatusCarries) {
  FieldViolations violations;
  violations.Add("content", "is required");
  violations.Add("model", "is too long");
  chat::v1::Error event;
  ToErrorEvent(violations.ToStatus(), "req-1", &event);
  EXPECT_EQ(event.code(), "INVALID_ARGUMENT");
  EXPECT_EQ(event.message(), "validation failed");
  EXPECT_EQ(event.request_id(), "req-1");
  ASSERT_EQ(event.details_size(), 2);
  EXPECT_EQ(event.details(0).field(), "content");
  EXPECT_EQ(event.details(1).description(), "is too long");

  chat::v1::Error unavailable;
  ToErrorEvent(absl::UnavailableError("the model provider failed"), "req-2",
               &unavailable);
  EXPECT_EQ(unavailable.code(), "UNAVAILABLE");
  EXPECT_EQ(unavailable.message(), "the model provider failed");
  EXPECT_EQ(unavailable.details_size(), 0);
}

}  // namespace
}  // namespace chat
