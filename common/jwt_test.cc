#include "common/jwt.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "common/test_keys.h"
#include "gtest/gtest.h"
#include "openssl/bio.h"
#include "openssl/evp.h"
#include "openssl/hmac.h"
#include "openssl/pem.h"
#include "openssl/rsa.h"

namespace chat {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;
using ::testing::HasSubstr;

std::string PublicPem(const std::string& private_pem) {
  BIO* in = BIO_new_mem_buf(private_pem.data(), private_pem.size());
  EVP_PKEY* key = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(out, key);
  char* data = nullptr;
  long length = BIO_get_mem_data(out, &data);
  std::string pem(data, length);
  BIO_free(in);
  BIO_free(out);
  EVP_PKEY_free(key);
  return pem;
}

std::string B64(absl::string_view s) {
  return absl::WebSafeBase64Escape(absl::string_view(s.data(), s.size()));
}

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pem_ = new std::string(::chat::testing::NewRsaPrivateKeyPem());
  }

  void SetUp() override {
    auto signer = JwtSigner::FromPem(*pem_);
    ASSERT_THAT(signer, IsOk());
    signer_ = *std::move(signer);
    keys_.Add(signer_->public_key());
  }

  AccessClaims Claims() const {
    return AccessClaims{.issuer = "chat-test",
                        .audience = "chat-api",
                        .subject = "0190f3a0-0000-7000-8000-000000000001",
                        .jwt_id = "jti-1",
                        .issued_at = now_,
                        .not_before = now_,
                        .expires_at = now_ + absl::Minutes(15)};
  }

  JwtVerifier Verifier() {
    return JwtVerifier(&keys_, {.issuer = "chat-test", .audience = "chat-api"});
  }

  std::string Sign(const AccessClaims& claims) {
    auto token = signer_->Sign(claims);
    EXPECT_THAT(token, IsOk());
    return *token;
  }

  // A token with the given header and payload JSON, signed with our key.
  std::string SignRaw(absl::string_view header, absl::string_view payload) {
    std::string signing_input = absl::StrCat(B64(header), ".", B64(payload));
    BIO* bio = BIO_new_mem_buf(pem_->data(), pem_->size());
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t length = 0;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
    EVP_DigestSign(ctx, nullptr, &length,
                   reinterpret_cast<const unsigned char*>(signing_input.data()),
                   signing_input.size());
    std::string sig(length, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &length,
                   reinterpret_cast<const unsigned char*>(signing_input.data()),
                   signing_input.size());
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    BIO_free(bio);
    return absl::StrCat(signing_input, ".", B64(sig.substr(0, length)));
  }

  std::string PayloadJson() const {
    const int64_t now = absl::ToUnixSeconds(now_);
    return absl::StrCat(
        R"({"iss":"chat-test","aud":"chat-api","sub":"u1","jti":"j","iat":)",
        now, R"(,"nbf":)", now, R"(,"exp":)", now + 900, "}");
  }

  static std::string* pem_;
  absl::Time now_ = absl::FromUnixSeconds(1767225600);  // 2026-01-01
  std::unique_ptr<JwtSigner> signer_;
  StaticKeySet keys_;
};

std::string* JwtTest::pem_ = nullptr;

TEST_F(JwtTest, SignedTokenVerifies) {
  auto claims = Verifier().Verify(Sign(Claims()), now_ + absl::Minutes(1));
  ASSERT_THAT(claims, IsOk());
  EXPECT_EQ(claims->subject, Claims().subject);
  EXPECT_EQ(claims->jwt_id, "jti-1");
  EXPECT_EQ(claims->expires_at, now_ + absl::Minutes(15));
}

TEST_F(JwtTest, HeaderNamesAlgorithmTypeAndKid) {
  std::vector<std::string> parts = absl::StrSplit(Sign(Claims()), '.');
  ASSERT_EQ(parts.size(), 3u);
  std::string header;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(parts[0], &header));
  EXPECT_THAT(header, HasSubstr(R"("alg":"RS256")"));
  EXPECT_THAT(header, HasSubstr(R"("typ":"at+jwt")"));
  EXPECT_THAT(header, HasSubstr(signer_->public_key()->kid()));
}

TEST_F(JwtTest, ExpiredTokenIsRejectedAfterSkew) {
  const std::string token = Sign(Claims());
  EXPECT_THAT(
      Verifier().Verify(token, now_ + absl::Minutes(15) + absl::Seconds(59)),
      IsOk());
  EXPECT_THAT(
      Verifier().Verify(token, now_ + absl::Minutes(16)),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
}

TEST_F(JwtTest, NotYetValidTokenIsRejected) {
  AccessClaims claims = Claims();
  claims.not_before = now_ + absl::Minutes(5);
  EXPECT_THAT(
      Verifier().Verify(Sign(claims), now_),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid yet")));
}

TEST_F(JwtTest, WrongIssuerOrAudienceIsRejected) {
  AccessClaims claims = Claims();
  claims.issuer = "someone-else";
  EXPECT_THAT(
      Verifier().Verify(Sign(claims), now_),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("issuer")));
  claims = Claims();
  claims.audience = "other-api";
  EXPECT_THAT(
      Verifier().Verify(Sign(claims), now_),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("audience")));
}

TEST_F(JwtTest, TamperedPayloadIsRejected) {
  std::vector<std::string> parts = absl::StrSplit(Sign(Claims()), '.');
  std::string payload;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(parts[1], &payload));
  payload.replace(payload.find("0190f3a0"), 8, "0190f3a1");
  const std::string forged =
      absl::StrCat(parts[0], ".", B64(payload), ".", parts[2]);
  EXPECT_THAT(
      Verifier().Verify(forged, now_),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("signature")));
}

TEST_F(JwtTest, AlgNoneIsRejected) {
  const std::string header = R"({"alg":"none","typ":"at+jwt"})";
  const std::string unsigned_token =
      absl::StrCat(B64(header), ".", B64(PayloadJson()), ".");
  EXPECT_THAT(Verifier().Verify(unsigned_token, now_),
              StatusIs(absl::StatusCode::kUnauthenticated));
  const std::string with_junk = absl::StrCat(unsigned_token, "c2ln");
  EXPECT_THAT(
      Verifier().Verify(with_junk, now_),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("algorithm")));
}

TEST_F(JwtTest, HmacWithThePublicKeyIsRejected) {
  // The classic algorithm-switch attack: HS256 keyed with the public key.
  const std::string header =
      absl::StrCat(R"({"alg":"HS256","typ":"at+jwt","kid":")",
                   signer_->public_key()->kid(), "\"}");
  const std::string input = absl::StrCat(B64(header), ".", B64(PayloadJson()));
  const std::string secret = PublicPem(*pem_);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  HMAC(EVP_sha256(), secret.data(), secret.size(),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
       &mac_length);
  const std::string token = absl::StrCat(
      input, ".",
      B64(absl::string_view(reinterpret_cast<char*>(mac), mac_length)));
  EXPECT_THAT(
      Verifier().Verify(token, now_),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("algorithm")));
}

TEST_F(JwtTest, UnknownKidIsRejected) {
  const std::string header = R"({"alg":"RS256","typ":"at+jwt","kid":"nope"})";
  EXPECT_THAT(
      Verifier().Verify(SignRaw(header, PayloadJson()), now_),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("unknown key")));
}

TEST_F(JwtTest, TokenOfAnotherKeyIsRejected) {
  auto other = JwtSigner::FromPem(::chat::testing::NewRsaPrivateKeyPem());
  ASSERT_THAT(other, IsOk());
  auto token = (*other)->Sign(Claims());
  ASSERT_THAT(token, IsOk());
  EXPECT_THAT(
      Verifier().Verify(*token, now_),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("unknown key")));
}

TEST_F(JwtTest, WrongTypeIsRejected) {
  const std::string header =
      absl::StrCat(R"({"alg":"RS256","typ":"refresh","kid":")",
                   signer_->public_key()->kid(), "\"}");
  EXPECT_THAT(Verifier().Verify(SignRaw(header, PayloadJson()), now_),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("not an access token")));
}

TEST_F(JwtTest, MissingClaimsAreRejected) {
  const std::string header =
      absl::StrCat(R"({"alg":"RS256","typ":"at+jwt","kid":")",
                   signer_->public_key()->kid(), "\"}");
  const std::string payload =
      R"({"iss":"chat-test","aud":"chat-api","sub":"u1"})";
  EXPECT_THAT(Verifier().Verify(SignRaw(header, payload), now_),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("required claims")));
}

// Each alternative spelling of a valid token's bytes is another token: none
// may verify (padding, whitespace, stray trailing bits).
TEST_F(JwtTest, NonCanonicalBase64UrlIsRejected) {
  const std::string token = Sign(Claims());
  ASSERT_THAT(Verifier().Verify(token, now_), IsOk());
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  const std::string signed_part = absl::StrCat(parts[0], ".", parts[1], ".");
  // An RSA-2048 signature is 256 bytes: 342 characters, whose last carries
  // 4 unused bits; flipping one keeps absl's decoder happy.
  std::string stray_bits = parts[2];
  stray_bits.back() = stray_bits.back() == 'A' ? 'B' : 'A';
  std::string spaced = token;
  spaced.insert(token.size() / 2, " ");
  for (const std::string& forged :
       {token + "==", token + "=", signed_part + parts[2] + "\n", spaced,
        signed_part + stray_bits, parts[0] + "=." + parts[1] + "." + parts[2],
        parts[0] + "." + parts[1] + "==." + parts[2]}) {
    EXPECT_THAT(Verifier().Verify(forged, now_),
                StatusIs(absl::StatusCode::kUnauthenticated))
        << forged;
  }
}

TEST(DecodeBase64UrlStrictTest, AcceptsOnlyTheCanonicalForm) {
  EXPECT_EQ(DecodeBase64UrlStrict("aGk"), "hi");
  EXPECT_EQ(DecodeBase64UrlStrict(""), "");
  EXPECT_EQ(DecodeBase64UrlStrict("_-8"), "\xff\xef");
  for (const char* text :
       {"aGk=", "aGl", "aG k", "aGk\n", "a", "+/8", "aGk."}) {
    EXPECT_EQ(DecodeBase64UrlStrict(text), std::nullopt) << text;
  }
}

TEST_F(JwtTest, GarbageIsRejected) {
  for (const char* token :
       {"", "abc", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.e30"}) {
    EXPECT_THAT(Verifier().Verify(token, now_),
                StatusIs(absl::StatusCode::kUnauthenticated))
        << token;
  }
}

TEST_F(JwtTest, JwkRoundTripVerifies) {
  auto from_jwk = RsaPublicKey::FromJwk(signer_->public_key()->jwk());
  ASSERT_THAT(from_jwk, IsOk());
  EXPECT_EQ((*from_jwk)->kid(), signer_->public_key()->kid());
  StaticKeySet remote;
  remote.Add(*from_jwk);
  JwtVerifier verifier(&remote,
                       {.issuer = "chat-test", .audience = "chat-api"});
  EXPECT_THAT(verifier.Verify(Sign(Claims()), now_), IsOk());
}

TEST_F(JwtTest, KidIsTheRfc7638Thumbprint) {
  // Same key from the public PEM gives the same kid.
  auto from_public = RsaPublicKey::FromPem(PublicPem(*pem_));
  ASSERT_THAT(from_public, IsOk());
  EXPECT_EQ((*from_public)->kid(), signer_->public_key()->kid());
  EXPECT_EQ(signer_->public_key()->kid().size(), 43u);  // base64url SHA-256
}

TEST(JwtKeyTest, ShortRsaKeyIsRefused) {
  EXPECT_THAT(JwtSigner::FromPem(::chat::testing::NewRsaPrivateKeyPem(1024)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2048")));
  EXPECT_THAT(JwtSigner::FromPem("not a key"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace chat
