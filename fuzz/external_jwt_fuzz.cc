// Tokens of the external issuer (common/external_jwt.h): the HS256 and
// EdDSA verifiers and the FederatedVerifier on any bytes. The first input
// byte picks what the rest is:
//   0: a token, verified as it is by every verifier
//   1: "header JSON\npayload JSON", signed with the HS256 secret and
//      verified, so that the claim checks run behind a valid signature
// Invariants: a verified external token has a UUID subject and is marked
// external; every failure is UNAUTHENTICATED.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/external_jwt.h"
#include "common/jwt.h"
#include "fuzz/fuzz_check.h"
#include "openssl/evp.h"
#include "openssl/hmac.h"
#include "openssl/pem.h"

namespace {

const absl::Time kNow = absl::FromUnixSeconds(1767225600);
constexpr char kIssuer[] = "https://issuer.example.com/auth/v1";
constexpr char kSecret[] = "fuzz-secret-of-at-least-32-bytes-long!!";

struct Verifiers {
  Verifiers() {
    hs256 = *chat::ExternalJwtVerifier::Create(
        {.issuer = kIssuer, .hs256_secret = kSecret});
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    eddsa = *chat::ExternalJwtVerifier::Create(
        {.issuer = kIssuer, .public_key_pem = std::string(data, length)});
    BIO_free(bio);
    EVP_PKEY_free(key);
    own = std::make_unique<chat::JwtVerifier>(
        &no_keys, chat::VerifyOptions{.issuer = "chat-backend",
                                      .audience = "chat-backend"});
    federated =
        std::make_unique<chat::FederatedVerifier>(own.get(), hs256.get());
  }
  std::unique_ptr<chat::ExternalJwtVerifier> hs256, eddsa;
  chat::StaticKeySet no_keys;
  std::unique_ptr<chat::JwtVerifier> own;
  std::unique_ptr<chat::FederatedVerifier> federated;
};

Verifiers& TheVerifiers() {
  static Verifiers* verifiers = new Verifiers();
  return *verifiers;
}

std::string Hs256(absl::string_view header, absl::string_view payload) {
  const std::string input = absl::StrCat(absl::WebSafeBase64Escape(header), ".",
                                         absl::WebSafeBase64Escape(payload));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), kSecret, sizeof(kSecret) - 1,
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
       &length);
  return absl::StrCat(input, ".",
                      absl::WebSafeBase64Escape(absl::string_view(
                          reinterpret_cast<char*>(mac), length)));
}

bool IsUuidShaped(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !absl::ascii_isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

void CheckExternal(const absl::StatusOr<chat::AccessClaims>& claims) {
  if (!claims.ok()) {
    FUZZ_CHECK(claims.status().code() == absl::StatusCode::kUnauthenticated);
    return;
  }
  FUZZ_CHECK(claims->external);
  FUZZ_CHECK(claims->issuer == kIssuer);
  FUZZ_CHECK(IsUuidShaped(claims->subject));
  FUZZ_CHECK(claims->expires_at > kNow - absl::Seconds(60));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view input(reinterpret_cast<const char*>(data + 1),
                                size - 1);
  Verifiers& v = TheVerifiers();
  if (data[0] % 2 == 0) {
    CheckExternal(v.hs256->Verify(input, kNow));
    CheckExternal(v.eddsa->Verify(input, kNow));
    absl::StatusOr<chat::AccessClaims> claims =
        v.federated->Verify(input, kNow);
    if (claims.ok())
      CheckExternal(claims);  // no own keys: only external
    else
      FUZZ_CHECK(claims.status().code() == absl::StatusCode::kUnauthenticated);
    return 0;
  }
  const size_t newline = input.find('\n');
  if (newline == absl::string_view::npos) return 0;
  const std::string token =
      Hs256(input.substr(0, newline), input.substr(newline + 1));
  CheckExternal(v.hs256->Verify(token, kNow));
  absl::StatusOr<chat::AccessClaims> claims = v.federated->Verify(token, kNow);
  if (claims.ok()) CheckExternal(claims);
  return 0;
}
