#include "common/jwt.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/json.h"
#include "openssl/bio.h"
#include "openssl/bn.h"
#include "openssl/core_names.h"
#include "openssl/evp.h"
#include "openssl/param_build.h"
#include "openssl/pem.h"

namespace chat {
namespace {

constexpr char kAlgorithm[] = "RS256";
constexpr char kType[] = "at+jwt";
constexpr int kMinRsaBits = 2048;

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using MdCtxPtr =
    std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr =
    std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using ParamBldPtr =
    std::unique_ptr<OSSL_PARAM_BLD,
                    Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr =
    std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;

absl::Status Unauthenticated(absl::string_view why) {
  return absl::UnauthenticatedError(why);
}

std::string Base64Url(absl::string_view bytes) {
  return absl::WebSafeBase64Escape(
      absl::string_view(bytes.data(), bytes.size()));
}

}  // namespace

std::optional<std::string> DecodeBase64UrlStrict(absl::string_view text) {
  std::string bytes;
  // Whatever absl's decoder tolerates (padding, whitespace, stray bits),
  // the one canonical encoding of the bytes must be the text itself.
  if (!absl::WebSafeBase64Unescape(text, &bytes) ||
      absl::WebSafeBase64Escape(bytes) != text) {
    return std::nullopt;
  }
  return bytes;
}

namespace {

absl::StatusOr<std::string> BignumParam(const EVP_PKEY* key, const char* name) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) {
    return absl::InvalidArgumentError("not an RSA key");
  }
  BignumPtr bn(raw);
  std::string bytes(BN_num_bytes(bn.get()), '\0');
  BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(bytes.data()));
  return bytes;
}

// RFC 7638 thumbprint of an RSA JWK.
std::string Thumbprint(const Jwk& jwk) {
  const std::string canonical = absl::StrCat(
      "{\"e\":\"", jwk.e, "\",\"kty\":\"RSA\",\"n\":\"", jwk.n, "\"}");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(canonical.data(), canonical.size(), digest, &length, EVP_sha256(),
             nullptr);
  return Base64Url(absl::string_view(reinterpret_cast<char*>(digest), length));
}

absl::StatusOr<Jwk> JwkOf(const EVP_PKEY* key) {
  absl::StatusOr<std::string> n = BignumParam(key, OSSL_PKEY_PARAM_RSA_N);
  if (!n.ok()) return n.status();
  absl::StatusOr<std::string> e = BignumParam(key, OSSL_PKEY_PARAM_RSA_E);
  if (!e.ok()) return e.status();
  Jwk jwk{.kid = "", .n = Base64Url(*n), .e = Base64Url(*e)};
  jwk.kid = Thumbprint(jwk);
  return jwk;
}

absl::Status CheckRsaKey(const EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA") != 1) {
    return absl::InvalidArgumentError("the key is not an RSA key");
  }
  if (EVP_PKEY_get_bits(key) < kMinRsaBits) {
    return absl::InvalidArgumentError("the RSA key is shorter than 2048 bits");
  }
  return absl::OkStatus();
}

absl::StatusOr<google::protobuf::Struct> DecodeJsonPart(
    absl::string_view part) {
  std::optional<std::string> json = DecodeBase64UrlStrict(part);
  if (!json) return Unauthenticated("malformed access token");
  absl::StatusOr<google::protobuf::Struct> parsed = ParseJsonObject(*json);
  if (!parsed.ok()) return Unauthenticated("malformed access token");
  return parsed;
}

const google::protobuf::Value* FieldOf(const google::protobuf::Struct& s,
                                       const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

// A NumericDate claim (RFC 7519): seconds since the epoch.
std::optional<absl::Time> TimeField(const google::protobuf::Struct& s,
                                    const std::string& name) {
  const google::protobuf::Value* v = FieldOf(s, name);
  if (v == nullptr || !v->has_number_value() ||
      !std::isfinite(v->number_value())) {
    return std::nullopt;
  }
  // Cast only what int64 holds (a larger double is undefined behaviour, and
  // on x86 became the far past): any time is kept within years 1..9999, so
  // a far-future iat or nbf stays in the future and a far-past exp past.
  constexpr double kFirst = -62135596800.0;  // 0001-01-01T00:00:00Z
  constexpr double kLast = 253402300799.0;   // 9999-12-31T23:59:59Z
  return absl::FromUnixSeconds(
      static_cast<int64_t>(std::clamp(v->number_value(), kFirst, kLast)));
}

bool AudienceMatches(const google::protobuf::Struct& claims,
                     const std::string& audience) {
  const google::protobuf::Value* aud = FieldOf(claims, "aud");
  if (aud == nullptr) return false;
  if (aud->has_string_value()) return aud->string_value() == audience;
  if (aud->has_list_value()) {
    for (const auto& item : aud->list_value().values()) {
      if (item.has_string_value() && item.string_value() == audience) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

std::string StringField(const google::protobuf::Struct& s,
                        const std::string& name) {
  const google::protobuf::Value* v = FieldOf(s, name);
  return v != nullptr && v->has_string_value() ? v->string_value() : "";
}

RsaPublicKey::RsaPublicKey(EVP_PKEY* key, Jwk jwk)
    : key_(key), kid_(jwk.kid), jwk_(std::move(jwk)) {}

RsaPublicKey::~RsaPublicKey() { EVP_PKEY_free(key_); }

absl::StatusOr<std::shared_ptr<const RsaPublicKey>> RsaPublicKey::FromJwk(
    const Jwk& jwk) {
  std::string n, e;
  if (!absl::WebSafeBase64Unescape(jwk.n, &n) ||
      !absl::WebSafeBase64Unescape(jwk.e, &e) || n.empty() || e.empty()) {
    return absl::InvalidArgumentError("malformed JWK");
  }
  BignumPtr n_bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                           n.size(), nullptr));
  BignumPtr e_bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                           e.size(), nullptr));
  ParamBldPtr builder(OSSL_PARAM_BLD_new());
  if (!n_bn || !e_bn || !builder ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N,
                             n_bn.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E,
                             e_bn.get()) != 1) {
    return absl::InternalError("cannot build an RSA key");
  }
  ParamPtr params(OSSL_PARAM_BLD_to_param(builder.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) !=
          1) {
    return absl::InvalidArgumentError("malformed JWK");
  }
  PkeyPtr key(raw);
  if (absl::Status s = CheckRsaKey(key.get()); !s.ok()) return s;
  return std::shared_ptr<const RsaPublicKey>(
      new RsaPublicKey(key.release(), jwk));
}

absl::StatusOr<std::shared_ptr<const RsaPublicKey>> RsaPublicKey::FromPem(
    absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    bio.reset(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  }
  if (!key) return absl::InvalidArgumentError("not a PEM key");
  if (absl::Status s = CheckRsaKey(key.get()); !s.ok()) return s;
  absl::StatusOr<Jwk> jwk = JwkOf(key.get());
  if (!jwk.ok()) return jwk.status();
  return std::shared_ptr<const RsaPublicKey>(
      new RsaPublicKey(key.release(), *std::move(jwk)));
}

bool RsaPublicKey::Verify(absl::string_view signed_part,
                          absl::string_view signature) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  return ctx &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                              key_) == 1 &&
         EVP_DigestVerify(
             ctx.get(),
             reinterpret_cast<const unsigned char*>(signature.data()),
             signature.size(),
             reinterpret_cast<const unsigned char*>(signed_part.data()),
             signed_part.size()) == 1;
}

void StaticKeySet::Add(std::shared_ptr<const RsaPublicKey> key) {
  std::lock_guard<std::mutex> lock(mutex_);
  keys_[key->kid()] = std::move(key);
}

std::shared_ptr<const RsaPublicKey> StaticKeySet::Find(absl::string_view kid) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : it->second;
}

std::vector<Jwk> StaticKeySet::Jwks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Jwk> jwks;
  for (const auto& [kid, key] : keys_) jwks.push_back(key->jwk());
  return jwks;
}

JwtSigner::JwtSigner(EVP_PKEY* key,
                     std::shared_ptr<const RsaPublicKey> public_key)
    : key_(key), public_key_(std::move(public_key)) {}

JwtSigner::~JwtSigner() { EVP_PKEY_free(key_); }

absl::StatusOr<std::unique_ptr<JwtSigner>> JwtSigner::FromPem(
    absl::string_view private_key_pem) {
  BioPtr bio(BIO_new_mem_buf(private_key_pem.data(),
                             static_cast<int>(private_key_pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError("not a PEM private key");
  if (absl::Status s = CheckRsaKey(key.get()); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<const RsaPublicKey>> public_key =
      RsaPublicKey::FromPem(private_key_pem);
  if (!public_key.ok()) return public_key.status();
  return std::unique_ptr<JwtSigner>(
      new JwtSigner(key.release(), *std::move(public_key)));
}

absl::StatusOr<std::string> JwtSigner::Sign(const AccessClaims& claims) const {
  const std::string header =
      absl::StrCat("{\"alg\":\"", kAlgorithm, "\",\"typ\":\"", kType,
                   "\",\"kid\":", JsonQuote(public_key_->kid()), "}");
  const std::string payload = absl::StrCat(
      "{\"iss\":", JsonQuote(claims.issuer),
      ",\"aud\":", JsonQuote(claims.audience),
      ",\"sub\":", JsonQuote(claims.subject),
      ",\"iat\":", absl::ToUnixSeconds(claims.issued_at),
      ",\"nbf\":", absl::ToUnixSeconds(claims.not_before),
      ",\"exp\":", absl::ToUnixSeconds(claims.expires_at),
      ",\"jti\":", JsonQuote(claims.jwt_id),
      claims.session_id.empty() ? "" : ",\"sid\":",
      claims.session_id.empty() ? "" : JsonQuote(claims.session_id), "}");
  std::string token = absl::StrCat(Base64Url(header), ".", Base64Url(payload));

  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t length = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_) !=
          1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length,
                     reinterpret_cast<const unsigned char*>(token.data()),
                     token.size()) != 1) {
    return absl::InternalError("cannot sign the access token");
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(
          ctx.get(), reinterpret_cast<unsigned char*>(signature.data()),
          &length, reinterpret_cast<const unsigned char*>(token.data()),
          token.size()) != 1) {
    return absl::InternalError("cannot sign the access token");
  }
  signature.resize(length);
  absl::StrAppend(&token, ".", Base64Url(signature));
  return token;
}

absl::StatusOr<ParsedJwt> ParseJwt(absl::string_view token) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() ||
      parts[2].empty()) {
    return Unauthenticated("malformed access token");
  }
  ParsedJwt jwt;
  absl::StatusOr<google::protobuf::Struct> header = DecodeJsonPart(parts[0]);
  if (!header.ok()) return header.status();
  absl::StatusOr<google::protobuf::Struct> payload = DecodeJsonPart(parts[1]);
  if (!payload.ok()) return payload.status();
  std::optional<std::string> signature = DecodeBase64UrlStrict(parts[2]);
  if (!signature) return Unauthenticated("malformed access token");
  jwt.signature = *std::move(signature);
  jwt.header = *std::move(header);
  jwt.payload = *std::move(payload);
  jwt.signed_part =
      std::string(token.substr(0, parts[0].size() + 1 + parts[1].size()));
  return jwt;
}

absl::StatusOr<AccessClaims> CheckClaims(
    const google::protobuf::Struct& payload, const VerifyOptions& options,
    absl::Time now, bool strict) {
  AccessClaims claims;
  claims.issuer = StringField(payload, "iss");
  claims.audience = options.audience;
  claims.subject = StringField(payload, "sub");
  claims.jwt_id = StringField(payload, "jti");
  claims.session_id = StringField(payload, "sid");
  claims.email = StringField(payload, "email");
  std::optional<absl::Time> iat = TimeField(payload, "iat");
  std::optional<absl::Time> nbf = TimeField(payload, "nbf");
  std::optional<absl::Time> exp = TimeField(payload, "exp");
  if (claims.issuer != options.issuer) {
    return Unauthenticated("access token issuer not accepted");
  }
  if (!AudienceMatches(payload, options.audience)) {
    return Unauthenticated("access token audience not accepted");
  }
  if (claims.subject.empty() || !exp ||
      (strict && (claims.jwt_id.empty() || !iat || !nbf))) {
    return Unauthenticated("access token lacks required claims");
  }
  if (*exp + options.clock_skew <= now) {
    return Unauthenticated("access token has expired");
  }
  if ((nbf && *nbf - options.clock_skew > now) ||
      (iat && *iat - options.clock_skew > now)) {
    return Unauthenticated("access token is not valid yet");
  }
  claims.issued_at = iat.value_or(absl::InfinitePast());
  claims.not_before = nbf.value_or(absl::InfinitePast());
  claims.expires_at = *exp;
  return claims;
}

absl::StatusOr<AccessClaims> JwtVerifier::Verify(absl::string_view token,
                                                 absl::Time now) const {
  absl::StatusOr<ParsedJwt> jwt = ParseJwt(token);
  if (!jwt.ok()) return jwt.status();
  // The algorithm is pinned: "none", HS256 (with the public key as the
  // secret) and every other value are refused before any key is touched.
  if (StringField(jwt->header, "alg") != kAlgorithm) {
    return Unauthenticated("access token algorithm not accepted");
  }
  if (StringField(jwt->header, "typ") != kType) {
    return Unauthenticated("not an access token");
  }
  std::shared_ptr<const RsaPublicKey> key =
      keys_->Find(StringField(jwt->header, "kid"));
  if (key == nullptr) {
    return Unauthenticated("access token signed by an unknown key");
  }
  if (!key->Verify(jwt->signed_part, jwt->signature)) {
    return Unauthenticated("access token signature is invalid");
  }
  return CheckClaims(jwt->payload, options_, now, /*strict=*/true);
}

}  // namespace chat
