#ifndef CHAT_COMMON_REQUEST_CONTEXT_H_
#define CHAT_COMMON_REQUEST_CONTEXT_H_

// What a handler reads from a call's metadata: the request id the gateway
// passes on (x-request-id), the caller's bearer token, the idempotency key.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/jwt.h"
#include "grpcpp/server_context.h"

namespace chat {

// The call's x-request-id, or "" when the client sent none.
std::string RequestIdOf(const grpc::ServerContextBase& context);

// The value of metadata `key` (lower case), or "".
std::string MetadataOf(const grpc::ServerContextBase& context,
                       absl::string_view key);

// Verifies the call's "authorization: Bearer <token>" and returns its claims.
// UNAUTHENTICATED when the header is missing, malformed or the token invalid.
absl::StatusOr<AccessClaims> Authenticate(
    const grpc::ServerContextBase& context, const AccessTokenVerifier& verifier,
    absl::Time now);
// The same for the value of an `authorization` header given otherwise (a
// stream of a Multiplex call carries its own).
absl::StatusOr<AccessClaims> Authenticate(absl::string_view authorization,
                                          const AccessTokenVerifier& verifier,
                                          absl::Time now);

}  // namespace chat

#endif  // CHAT_COMMON_REQUEST_CONTEXT_H_
