#include "common/external_jwt.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "openssl/evp.h"
#include "openssl/hmac.h"
#include "openssl/pem.h"

namespace chat {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kIssuer[] = "https://project.supabase.co/auth/v1";
constexpr char kSecret[] = "super-secret-jwt-token-with-at-least-32-characters";
constexpr char kSubject[] = "6f1d2c3b-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
const absl::Time kNow = absl::FromUnixSeconds(1767225600);

std::string B64(absl::string_view s) { return absl::WebSafeBase64Escape(s); }

std::string Payload(absl::string_view sub = kSubject, int64_t exp_offset = 3600,
                    absl::string_view aud = "authenticated") {
  return absl::StrCat(
      R"({"iss":")", kIssuer, R"(","aud":")", aud, R"(","sub":")", sub,
      R"(","email":"ext@example.com","role":"authenticated","iat":)",
      absl::ToUnixSeconds(kNow), R"(,"exp":)",
      absl::ToUnixSeconds(kNow) + exp_offset, "}");
}

std::string Hs256(absl::string_view payload, absl::string_view secret = kSecret,
                  absl::string_view alg = "HS256") {
  const std::string input =
      absl::StrCat(B64(absl::StrCat(R"({"alg":")", alg, R"(","typ":"JWT"})")),
                   ".", B64(payload));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), secret.size(),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
       &length);
  return absl::StrCat(
      input, ".", B64(absl::string_view(reinterpret_cast<char*>(mac), length)));
}

std::unique_ptr<ExternalJwtVerifier> HmacVerifier() {
  auto verifier =
      ExternalJwtVerifier::Create({.issuer = kIssuer, .hs256_secret = kSecret});
  EXPECT_THAT(verifier, IsOk());
  return *std::move(verifier);
}

TEST(ExternalJwtTest, AcceptsTheProvidersHs256Tokens) {
  absl::StatusOr<AccessClaims> claims =
      HmacVerifier()->Verify(Hs256(Payload()), kNow);
  ASSERT_THAT(claims, IsOk());
  EXPECT_EQ(claims->subject, kSubject);
  EXPECT_EQ(claims->email, "ext@example.com");
  EXPECT_TRUE(claims->external);
}

TEST(ExternalJwtTest, RefusesWrongSecretAlgorithmAudienceExpiryAndSubject) {
  auto verifier = HmacVerifier();
  EXPECT_THAT(
      verifier->Verify(Hs256(Payload(), "another-secret"), kNow),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("signature")));
  EXPECT_THAT(
      verifier->Verify(Hs256(Payload(), kSecret, "none"), kNow),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("algorithm")));
  EXPECT_THAT(
      verifier->Verify(Hs256(Payload(kSubject, 3600, "other")), kNow),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("audience")));
  EXPECT_THAT(
      verifier->Verify(Hs256(Payload(kSubject, -120)), kNow),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
  EXPECT_THAT(
      verifier->Verify(Hs256(Payload("not-a-uuid")), kNow),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("user id")));
}

TEST(ExternalJwtTest, AcceptsEd25519WhenConfiguredWithItsPublicKey) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  // Two statements: the order in which arguments are evaluated is
  // unspecified (clang reads `data` before BIO_get_mem_data sets it).
  const long pem_length = BIO_get_mem_data(bio, &data);
  const std::string pem(data, pem_length);
  BIO_free(bio);
  auto verifier =
      ExternalJwtVerifier::Create({.issuer = kIssuer, .public_key_pem = pem});
  ASSERT_THAT(verifier, IsOk());

  const std::string input =
      absl::StrCat(B64(R"({"alg":"EdDSA","typ":"JWT"})"), ".", B64(Payload()));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t length = 64;
  unsigned char signature[64];
  EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key);
  EVP_DigestSign(ctx, signature, &length,
                 reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  const std::string token = absl::StrCat(
      input, ".",
      B64(absl::string_view(reinterpret_cast<char*>(signature), length)));
  EXPECT_THAT((*verifier)->Verify(token, kNow), IsOk());
  // HS256 keyed with the public key is the algorithm-switch attack.
  EXPECT_THAT(
      (*verifier)->Verify(Hs256(Payload(), pem), kNow),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("algorithm")));
}

TEST(ExternalJwtTest, ConfigurationNeedsExactlyOneKey) {
  EXPECT_THAT(ExternalJwtVerifier::Create({.issuer = kIssuer}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      ExternalJwtVerifier::Create(
          {.issuer = kIssuer, .hs256_secret = "s", .public_key_pem = "p"}),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ExternalJwtVerifier::Create({.issuer = "", .hs256_secret = "s"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Stands for our own verifier: accepts one fixed token.
class OwnTokens final : public AccessTokenVerifier {
 public:
  absl::StatusOr<AccessClaims> Verify(absl::string_view token,
                                      absl::Time) const override {
    if (token != "own-token") return absl::UnauthenticatedError("not ours");
    AccessClaims claims;
    claims.subject = "own-user";
    return claims;
  }
};

TEST(FederatedVerifierTest, PicksTheVerifierByIssuer) {
  OwnTokens own;
  auto external = HmacVerifier();
  FederatedVerifier both(&own, external.get());
  EXPECT_EQ(both.Verify("own-token", kNow)->subject, "own-user");
  EXPECT_EQ(both.Verify(Hs256(Payload()), kNow)->subject, kSubject);
  EXPECT_THAT(both.Verify(Hs256(Payload(), "forged"), kNow),
              StatusIs(absl::StatusCode::kUnauthenticated));
  FederatedVerifier own_only(&own, nullptr);
  EXPECT_THAT(own_only.Verify(Hs256(Payload()), kNow),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

}  // namespace
}  // namespace chat
