#ifndef CHAT_COMMON_PROTO_TIME_H_
#define CHAT_COMMON_PROTO_TIME_H_

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace chat {

// Writes `time` into a google.protobuf.Timestamp (JSON: RFC 3339 in UTC).
void SetTimestamp(absl::Time time, google::protobuf::Timestamp* out);

}  // namespace chat

#endif  // CHAT_COMMON_PROTO_TIME_H_
