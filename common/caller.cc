#include "common/caller.h"

#include "absl/flags/flag.h"
#include "common/config.h"
#include "common/request_context.h"
#include "common/service_flags.h"
#include "grpcpp/create_channel.h"

namespace chat {

absl::StatusOr<std::string> CallerResolver::UserId(
    const grpc::ServerContextBase& context) const {
  return UserIdOf(MetadataOf(context, "authorization"));
}

absl::StatusOr<std::string> CallerResolver::UserIdOf(
    absl::string_view authorization) const {
  absl::StatusOr<AccessClaims> claims =
      Authenticate(authorization, *verifier_, clock_->Now());
  if (!claims.ok()) return claims.status();
  if (claims->external && external_users_ != nullptr) {
    if (absl::Status s = external_users_->Ensure(*claims); !s.ok()) return s;
  }
  return claims->subject;
}

absl::StatusOr<TokenVerification> TokenVerification::FromFlags() {
  TokenVerification v;
  v.jwks = std::make_unique<JwksClient>(grpc::CreateChannel(
      absl::GetFlag(FLAGS_auth_addr), grpc::InsecureChannelCredentials()));
  v.own = std::make_unique<JwtVerifier>(
      v.jwks.get(),
      VerifyOptions{.issuer = absl::GetFlag(FLAGS_token_issuer),
                    .audience = absl::GetFlag(FLAGS_token_audience)});
  if (const std::string issuer = absl::GetFlag(FLAGS_external_issuer);
      !issuer.empty()) {
    ExternalIssuerOptions options;
    options.issuer = issuer;
    options.audience = absl::GetFlag(FLAGS_external_audience);
    options.hs256_secret = ReadSecret("EXTERNAL_JWT_SECRET").value_or("");
    if (const std::string path = absl::GetFlag(FLAGS_external_public_key_file);
        !path.empty()) {
      absl::StatusOr<std::string> pem = ReadFile(path);
      if (!pem.ok()) return pem.status();
      options.public_key_pem = *pem;
    }
    absl::StatusOr<std::unique_ptr<ExternalJwtVerifier>> external =
        ExternalJwtVerifier::Create(std::move(options));
    if (!external.ok()) return external.status();
    v.external = *std::move(external);
  }
  v.federated =
      std::make_unique<FederatedVerifier>(v.own.get(), v.external.get());
  v.verifier = std::make_unique<CachingVerifier>(v.federated.get());
  return v;
}

}  // namespace chat
