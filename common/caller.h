#ifndef CHAT_COMMON_CALLER_H_
#define CHAT_COMMON_CALLER_H_

// Who is calling a conversation or message service: the user of a verified
// bearer token, ours or the configured external provider's (whose profile
// row is created on first sight).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/external_jwt.h"
#include "common/grpc_status.h"
#include "common/jwks_client.h"
#include "common/jwt.h"
#include "common/token_cache.h"
#include "grpcpp/server_context.h"

namespace chat {

// Gives a user of the external issuer the profile row that owns their data,
// on first sight (common/external_users.h keeps it in PostgreSQL).
class ExternalUserRegistry {
 public:
  virtual ~ExternalUserRegistry() = default;
  // UNAUTHENTICATED when the token's subject may not act here (the id of a
  // local account).
  virtual absl::Status Ensure(const AccessClaims& claims) = 0;
};

class CallerResolver {
 public:
  // `external_users` may be null when no external issuer is configured.
  CallerResolver(const AccessTokenVerifier* verifier,
                 ExternalUserRegistry* external_users, const Clock* clock)
      : verifier_(verifier), external_users_(external_users), clock_(clock) {}

  // The caller's user id; UNAUTHENTICATED without a valid token.
  absl::StatusOr<std::string> UserId(
      const grpc::ServerContextBase& context) const;
  // The same for an `authorization` header ("Bearer <token>") given
  // otherwise (a stream of a Multiplex call carries its own).
  absl::StatusOr<std::string> UserIdOf(absl::string_view authorization) const;

 private:
  const AccessTokenVerifier* verifier_;
  ExternalUserRegistry* external_users_;
  const Clock* clock_;
};

// The one way a handler of a caller's call starts and ends: resolves the
// caller, runs body(user_id) (an absl::Status-returning lambda that fills
// the response), and maps its status to the answer.
//
//   return ForCaller(*callers_, *context, [&](const std::string& user) {
//     ASSIGN_OR_RETURN(ConversationRecord c, conversations_->Get(user, id));
//     ToProto(c, response);
//     return absl::OkStatus();
//   });
template <typename Body>
grpc::Status ForCaller(const CallerResolver& callers,
                       const grpc::ServerContextBase& context, Body&& body) {
  absl::StatusOr<std::string> user = callers.UserId(context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  return ToGrpcStatus(body(*user));
}

// The token verification of a service, from its flags and environment: our
// tokens through the auth service's JWK Set, plus the external issuer when
// --external_issuer is set (secret EXTERNAL_JWT_SECRET, or
// --external_public_key_file).
struct TokenVerification {
  std::unique_ptr<JwksClient> jwks;
  std::unique_ptr<JwtVerifier> own;
  std::unique_ptr<ExternalJwtVerifier> external;  // null when not configured
  std::unique_ptr<FederatedVerifier> federated;
  std::unique_ptr<CachingVerifier> verifier;  // what callers use

  static absl::StatusOr<TokenVerification> FromFlags();
};

}  // namespace chat

#endif  // CHAT_COMMON_CALLER_H_
