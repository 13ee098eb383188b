#include "common/external_jwt.h"

#include "common/ids.h"
#include "openssl/bio.h"
#include "openssl/crypto.h"
#include "openssl/evp.h"
#include "openssl/hmac.h"
#include "openssl/pem.h"

namespace chat {
namespace {

bool VerifyHmac(const std::string& secret, const ParsedJwt& jwt) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(jwt.signed_part.data()),
       jwt.signed_part.size(), mac, &length);
  return length == jwt.signature.size() &&
         CRYPTO_memcmp(mac, jwt.signature.data(), length) == 0;
}

bool VerifyWithKey(EVP_PKEY* key, const EVP_MD* digest, const ParsedJwt& jwt) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      ctx != nullptr &&
      EVP_DigestVerifyInit(ctx, nullptr, digest, nullptr, key) == 1 &&
      EVP_DigestVerify(
          ctx, reinterpret_cast<const unsigned char*>(jwt.signature.data()),
          jwt.signature.size(),
          reinterpret_cast<const unsigned char*>(jwt.signed_part.data()),
          jwt.signed_part.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ExternalJwtVerifier>>
ExternalJwtVerifier::Create(ExternalIssuerOptions options) {
  if (options.issuer.empty()) {
    return absl::InvalidArgumentError("the external issuer needs its iss");
  }
  if (options.hs256_secret.empty() == options.public_key_pem.empty()) {
    return absl::InvalidArgumentError(
        "the external issuer needs either a shared secret or a public key");
  }
  if (!options.hs256_secret.empty()) {
    return std::unique_ptr<ExternalJwtVerifier>(
        new ExternalJwtVerifier(std::move(options), nullptr, "HS256"));
  }
  BIO* bio = BIO_new_mem_buf(options.public_key_pem.data(),
                             static_cast<int>(options.public_key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        "the external public key is not a PEM key");
  }
  std::string algorithm;
  if (EVP_PKEY_is_a(key, "ED25519") == 1) {
    algorithm = "EdDSA";
  } else if (EVP_PKEY_is_a(key, "RSA") == 1 && EVP_PKEY_get_bits(key) >= 2048) {
    algorithm = "RS256";
  } else {
    EVP_PKEY_free(key);
    return absl::InvalidArgumentError(
        "the external public key must be Ed25519 or RSA of at least 2048 bits");
  }
  return std::unique_ptr<ExternalJwtVerifier>(
      new ExternalJwtVerifier(std::move(options), key, algorithm));
}

ExternalJwtVerifier::ExternalJwtVerifier(ExternalIssuerOptions options,
                                         EVP_PKEY* key, std::string algorithm)
    : options_(std::move(options)),
      key_(key),
      algorithm_(std::move(algorithm)) {}

ExternalJwtVerifier::~ExternalJwtVerifier() { EVP_PKEY_free(key_); }

absl::StatusOr<AccessClaims> ExternalJwtVerifier::Verify(
    absl::string_view token, absl::Time now) const {
  absl::StatusOr<ParsedJwt> jwt = ParseJwt(token);
  if (!jwt.ok()) return jwt.status();
  if (StringField(jwt->header, "alg") != algorithm_) {
    return absl::UnauthenticatedError("access token algorithm not accepted");
  }
  const bool verified =
      key_ == nullptr
          ? VerifyHmac(options_.hs256_secret, *jwt)
          : VerifyWithKey(key_, algorithm_ == "RS256" ? EVP_sha256() : nullptr,
                          *jwt);
  if (!verified)
    return absl::UnauthenticatedError("access token signature is invalid");
  absl::StatusOr<AccessClaims> claims =
      CheckClaims(jwt->payload,
                  {.issuer = options_.issuer,
                   .audience = options_.audience,
                   .clock_skew = options_.clock_skew},
                  now, /*strict=*/false);
  if (!claims.ok()) return claims.status();
  if (!IsUuid(claims->subject)) {
    return absl::UnauthenticatedError("access token subject is not a user id");
  }
  claims->external = true;
  return claims;
}

absl::StatusOr<AccessClaims> FederatedVerifier::Verify(absl::string_view token,
                                                       absl::Time now) const {
  if (external_ != nullptr) {
    // The unverified issuer only picks the verifier; each verifies fully.
    absl::StatusOr<ParsedJwt> jwt = ParseJwt(token);
    if (jwt.ok() && StringField(jwt->payload, "iss") == external_->issuer()) {
      return external_->Verify(token, now);
    }
  }
  return own_->Verify(token, now);
}

}  // namespace chat
