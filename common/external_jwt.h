#ifndef CHAT_COMMON_EXTERNAL_JWT_H_
#define CHAT_COMMON_EXTERNAL_JWT_H_

// Access tokens of one configured external identity provider (the Supabase
// case, docs/api.md "Auth"): HS256 with a shared secret, or RS256 / EdDSA with a
// public key. The algorithm follows from the configured key and is pinned:
// a token naming any other is refused. Subjects must be UUIDs, since they
// become user ids.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/jwt.h"

namespace chat {

struct ExternalIssuerOptions {
  std::string issuer;
  std::string audience = "authenticated";
  std::string hs256_secret;    // either this
  std::string public_key_pem;  // or this: RSA (RS256) or Ed25519 (EdDSA)
  absl::Duration clock_skew = absl::Seconds(60);
};

class ExternalJwtVerifier final : public AccessTokenVerifier {
 public:
  // INVALID_ARGUMENT without an issuer, or without exactly one of the secret
  // and the public key, or with a key that is neither RSA >= 2048 bits nor
  // Ed25519.
  static absl::StatusOr<std::unique_ptr<ExternalJwtVerifier>> Create(
      ExternalIssuerOptions options);
  ~ExternalJwtVerifier() override;

  const std::string& issuer() const { return options_.issuer; }
  absl::StatusOr<AccessClaims> Verify(absl::string_view token,
                                      absl::Time now) const override;

 private:
  ExternalJwtVerifier(ExternalIssuerOptions options, EVP_PKEY* key,
                      std::string algorithm);
  ExternalIssuerOptions options_;
  EVP_PKEY* key_;  // null for HS256
  std::string algorithm_;
};

// Our own tokens, or the external provider's when a token names its issuer.
class FederatedVerifier final : public AccessTokenVerifier {
 public:
  // `external` may be null: then only our own tokens are accepted.
  FederatedVerifier(const AccessTokenVerifier* own,
                    const ExternalJwtVerifier* external)
      : own_(own), external_(external) {}

  absl::StatusOr<AccessClaims> Verify(absl::string_view token,
                                      absl::Time now) const override;

 private:
  const AccessTokenVerifier* own_;
  const ExternalJwtVerifier* external_;
};

}  // namespace chat

#endif  // CHAT_COMMON_EXTERNAL_JWT_H_
