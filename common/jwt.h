#ifndef CHAT_COMMON_JWT_H_
#define CHAT_COMMON_JWT_H_

// Access tokens: compact JWS with RS256 (RSASSA-PKCS1-v1_5, SHA-256), header
// {"alg":"RS256","typ":"at+jwt","kid":...}. RS256 was picked over EdDSA by
// measurement: every request verifies a token, and on this project's machines
// an RSA-2048 verification costs about a sixth of an Ed25519 one (see
// BENCHMARKS.md); signing, which is slower, happens only at login and refresh.
//
// Verification pins the algorithm (so "none" and HMAC-with-the-public-key are
// refused), requires a known kid, and checks iss, aud, exp, nbf and iat with a
// clock skew allowance.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace chat {

// The claims of an access token.
struct AccessClaims {
  std::string issuer;
  std::string audience;
  std::string subject;  // the user id
  std::string jwt_id;
  // "sid": the session the token was issued for: the login (its refresh-
  // token family's id), or a twin of it made by a refresh replayed within
  // the grace window.
  std::string session_id;
  // Set for tokens of the configured external identity provider.
  bool external = false;
  std::string email;  // "email", when an external token has one
  absl::Time issued_at;
  absl::Time not_before;
  absl::Time expires_at;
};

// A public key in JWK form (RFC 7517): kty "RSA", n and e base64url.
struct Jwk {
  std::string kid;
  std::string n;
  std::string e;
};

// An RSA public key that verifies RS256 signatures.
class RsaPublicKey {
 public:
  // From a JWK; the kid is taken as given.
  static absl::StatusOr<std::shared_ptr<const RsaPublicKey>> FromJwk(
      const Jwk& jwk);
  // From a PEM public or private key; the kid is its RFC 7638 thumbprint.
  static absl::StatusOr<std::shared_ptr<const RsaPublicKey>> FromPem(
      absl::string_view pem);

  ~RsaPublicKey();
  const std::string& kid() const { return kid_; }
  const Jwk& jwk() const { return jwk_; }
  bool Verify(absl::string_view signed_part, absl::string_view signature) const;

 private:
  RsaPublicKey(EVP_PKEY* key, Jwk jwk);
  EVP_PKEY* key_;
  std::string kid_;
  Jwk jwk_;
};

// Finds verification keys by kid.
class KeyLookup {
 public:
  virtual ~KeyLookup() = default;
  // nullptr when the kid is unknown.
  virtual std::shared_ptr<const RsaPublicKey> Find(absl::string_view kid) = 0;
};

// A fixed set of keys.
class StaticKeySet final : public KeyLookup {
 public:
  void Add(std::shared_ptr<const RsaPublicKey> key);
  std::shared_ptr<const RsaPublicKey> Find(absl::string_view kid) override;
  std::vector<Jwk> Jwks() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const RsaPublicKey>, std::less<>> keys_;
};

// Signs access tokens with one RSA private key (at least 2048 bits).
class JwtSigner {
 public:
  static absl::StatusOr<std::unique_ptr<JwtSigner>> FromPem(
      absl::string_view private_key_pem);
  ~JwtSigner();

  absl::StatusOr<std::string> Sign(const AccessClaims& claims) const;
  // The public half, for the JWK Set and for local verification.
  const std::shared_ptr<const RsaPublicKey>& public_key() const {
    return public_key_;
  }

 private:
  JwtSigner(EVP_PKEY* key, std::shared_ptr<const RsaPublicKey> public_key);
  EVP_PKEY* key_;
  std::shared_ptr<const RsaPublicKey> public_key_;
};

struct VerifyOptions {
  std::string issuer;
  std::string audience;
  absl::Duration clock_skew = absl::Seconds(60);
};

// A compact JWS split into its parts; nothing verified yet.
struct ParsedJwt {
  google::protobuf::Struct header;
  google::protobuf::Struct payload;
  std::string signed_part;  // "header.payload", the bytes that were signed
  std::string signature;    // decoded
};

// Decodes base64url strictly (docs/api.md "Access tokens"): the unpadded alphabet
// only, no whitespace, and canonical trailing bits, so that each value has
// exactly one encoding. nullopt otherwise.
std::optional<std::string> DecodeBase64UrlStrict(absl::string_view text);

// The string member `name` of a JWT header or payload; "" when absent or
// not a string.
std::string StringField(const google::protobuf::Struct& object,
                        const std::string& name);

// UNAUTHENTICATED when `token` is not three base64url parts of which the
// first two are JSON objects.
absl::StatusOr<ParsedJwt> ParseJwt(absl::string_view token);

// The claims of a token whose signature was verified, after checking iss,
// aud, exp and (when present, or always when `strict`) nbf and iat, with the
// clock skew of `options`. `strict` also requires jti.
absl::StatusOr<AccessClaims> CheckClaims(
    const google::protobuf::Struct& payload, const VerifyOptions& options,
    absl::Time now, bool strict);

// Anything that turns a bearer token into its caller's claims. Every
// failure is UNAUTHENTICATED.
class AccessTokenVerifier {
 public:
  virtual ~AccessTokenVerifier() = default;
  virtual absl::StatusOr<AccessClaims> Verify(absl::string_view token,
                                              absl::Time now) const = 0;
};

// Verifies our own access tokens.
class JwtVerifier final : public AccessTokenVerifier {
 public:
  JwtVerifier(KeyLookup* keys, VerifyOptions options)
      : keys_(keys), options_(std::move(options)) {}

  absl::StatusOr<AccessClaims> Verify(absl::string_view token,
                                      absl::Time now) const override;

 private:
  KeyLookup* keys_;
  VerifyOptions options_;
};

}  // namespace chat

#endif  // CHAT_COMMON_JWT_H_
