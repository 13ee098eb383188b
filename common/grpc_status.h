#ifndef CHAT_COMMON_GRPC_STATUS_H_
#define CHAT_COMMON_GRPC_STATUS_H_

// The one boundary between absl::Status (inside) and grpc::Status (on the
// wire). Field violations travel as google.rpc.BadRequest and waits as
// google.rpc.RetryInfo, inside the standard grpc-status-details-bin trailer,
// where the gateway and any gRPC client find them.

#include <string>

#include "absl/status/status.h"
#include "chat/v1/types.pb.h"
#include "grpcpp/support/status.h"

namespace chat {

grpc::Status ToGrpcStatus(const absl::Status& status);

// The `error` event of a stream: the same code, message and field
// violations as ToGrpcStatus(status) carries, so a failure reads the same
// whether it ends a call or a stream. The gateway scrubs both alike.
void ToErrorEvent(const absl::Status& status, const std::string& request_id,
                  chat::v1::Error* out);

// The reverse, for our own gRPC clients (details are dropped).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace chat

#endif  // CHAT_COMMON_GRPC_STATUS_H_
