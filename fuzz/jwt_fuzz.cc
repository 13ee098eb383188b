// Our access tokens (common/jwt.h): ParseJwt, CheckClaims and JwtVerifier on
// any bytes. The first input byte picks what the rest is:
//   0: a token, parsed and verified as it is
//   1: a JWT payload (JSON), checked by CheckClaims, lenient and strict
//   2: "header JSON\npayload JSON", signed with the verifier's key and
//      verified, so that the claim checks run behind a valid signature;
//      "$KID" in the header stands for the key's kid
// Invariants: a parsed token's signed part is its first two segments; a
// verified token has a subject, a jti and an expiry after now - skew.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/json.h"
#include "common/jwt.h"
#include "common/test_keys.h"
#include "fuzz/fuzz_check.h"
#include "openssl/evp.h"
#include "openssl/pem.h"

namespace {

const absl::Time kNow = absl::FromUnixSeconds(1767225600);
const chat::VerifyOptions kOptions{.issuer = "chat-backend",
                                   .audience = "chat-backend"};

struct Keys {
  Keys() {
    const std::string pem = chat::testing::NewRsaPrivateKeyPem();
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    private_key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    public_key = *chat::RsaPublicKey::FromPem(pem);
    keys.Add(public_key);
  }
  EVP_PKEY* private_key;
  std::shared_ptr<const chat::RsaPublicKey> public_key;
  chat::StaticKeySet keys;
};

Keys& TheKeys() {
  static Keys* keys = new Keys();
  return *keys;
}

std::string Sign(absl::string_view header, absl::string_view payload) {
  const std::string input = absl::StrCat(absl::WebSafeBase64Escape(header), ".",
                                         absl::WebSafeBase64Escape(payload));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char signature[512];
  size_t length = sizeof(signature);
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr,
                     TheKeys().private_key);
  EVP_DigestSign(ctx, signature, &length,
                 reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  EVP_MD_CTX_free(ctx);
  return absl::StrCat(input, ".",
                      absl::WebSafeBase64Escape(absl::string_view(
                          reinterpret_cast<char*>(signature), length)));
}

void CheckVerified(const absl::StatusOr<chat::AccessClaims>& claims) {
  if (!claims.ok()) {
    FUZZ_CHECK(claims.status().code() == absl::StatusCode::kUnauthenticated);
    return;
  }
  FUZZ_CHECK(!claims->subject.empty());
  FUZZ_CHECK(!claims->jwt_id.empty());
  FUZZ_CHECK(claims->issuer == kOptions.issuer);
  FUZZ_CHECK(claims->expires_at > kNow - kOptions.clock_skew);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view input(reinterpret_cast<const char*>(data + 1),
                                size - 1);
  chat::JwtVerifier verifier(&TheKeys().keys, kOptions);
  switch (data[0] % 3) {
    case 0: {
      absl::StatusOr<chat::ParsedJwt> jwt = chat::ParseJwt(input);
      if (jwt.ok()) {
        FUZZ_CHECK(input.substr(0, jwt->signed_part.size()) ==
                   jwt->signed_part);
        FUZZ_CHECK(input.size() > jwt->signed_part.size() + 1);
        FUZZ_CHECK(input[jwt->signed_part.size()] == '.');
      } else {
        FUZZ_CHECK(jwt.status().code() == absl::StatusCode::kUnauthenticated);
      }
      CheckVerified(verifier.Verify(input, kNow));
      break;
    }
    case 1: {
      absl::StatusOr<google::protobuf::Struct> payload =
          chat::ParseJsonObject(input);
      if (!payload.ok()) break;
      for (bool strict : {false, true}) {
        absl::StatusOr<chat::AccessClaims> claims =
            chat::CheckClaims(*payload, kOptions, kNow, strict);
        if (claims.ok()) {
          FUZZ_CHECK(!claims->subject.empty());
          FUZZ_CHECK(claims->expires_at > kNow - kOptions.clock_skew);
        }
      }
      break;
    }
    case 2: {
      const size_t newline = input.find('\n');
      if (newline == absl::string_view::npos) break;
      const std::string header = absl::StrReplaceAll(
          input.substr(0, newline), {{"$KID", TheKeys().public_key->kid()}});
      CheckVerified(
          verifier.Verify(Sign(header, input.substr(newline + 1)), kNow));
      break;
    }
  }
  return 0;
}
