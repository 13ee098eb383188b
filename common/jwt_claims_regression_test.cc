// Inputs found by the fuzz targets in fuzz/ that broke the claim checks of
// common/jwt.cc; each stays here as a regression test.

#include "common/json.h"
#include "common/jwt.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

using ::chat::testing::StatusIs;

const absl::Time kNow = absl::FromUnixSeconds(1767225600);
const VerifyOptions kOptions{.issuer = "iss", .audience = "aud"};

absl::StatusOr<AccessClaims> Check(const std::string& extra, bool strict) {
  absl::StatusOr<google::protobuf::Struct> payload = ParseJsonObject(
      "{\"iss\":\"iss\",\"aud\":\"aud\",\"sub\":\"u\",\"jti\":\"j\"," + extra +
      "}");
  EXPECT_TRUE(payload.ok()) << payload.status();
  return CheckClaims(*payload, kOptions, kNow, strict);
}

// external_jwt_fuzz: "iat": 1.7672256055e38 in an HS256 token of the
// external issuer. TimeField (jwt.cc) cast the double to int64_t, which is
// undefined for a value out of range (UBSan: float-cast-overflow); on x86
// it gave INT64_MIN, so a token issued in the far future passed as issued
// in the far past.
TEST(JwtClaimsRegressionTest, TimesBeyondInt64AreNotValidYet) {
  for (bool strict : {false, true}) {
    EXPECT_THAT(Check("\"exp\":1767226500,\"nbf\":1767225600,"
                      "\"iat\":176722560555555555555555555555555550",
                      strict),
                StatusIs(absl::StatusCode::kUnauthenticated));
    EXPECT_THAT(
        Check("\"exp\":1767226500,\"iat\":1767225600,\"nbf\":1e300", strict),
        StatusIs(absl::StatusCode::kUnauthenticated));
  }
}

TEST(JwtClaimsRegressionTest, AnExpiryBeyondInt64IsNeitherUndefinedNorPast) {
  // Far past: expired. Far future: not expired (or refused), never UB.
  EXPECT_THAT(Check("\"exp\":-1e300", false),
              StatusIs(absl::StatusCode::kUnauthenticated));
  absl::StatusOr<AccessClaims> future = Check("\"exp\":1e300", false);
  if (future.ok()) EXPECT_GT(future->expires_at, kNow);
}

// docs/api.md "Access tokens": base64url in tokens is strict (no padding,
// no whitespace, canonical trailing bits): "eQ==", "e y", a trailing
// newline and "eR" for "eQ" are all refused.
TEST(JwtBase64RegressionTest, PartsAreStrictBase64Url) {
  // {"a":1} is eyJhIjoxfQ; "x" is eA, and eB has the same 6+2 bits.
  for (const char* token :
       {"eyJhIjoxfQ==.eyJhIjoxfQ.eA", "eyJhIjoxfQ.eyJh IjoxfQ.eA",
        "eyJhIjoxfQ.eyJhIjoxfQ.eA\n", "eyJhIjoxfQ.eyJhIjoxfQ.eB",
        "eyJhIjoxfQ.eyJhIjoxfQ.eA=="}) {
    EXPECT_THAT(ParseJwt(token), StatusIs(absl::StatusCode::kUnauthenticated))
        << token;
  }
  EXPECT_TRUE(ParseJwt("eyJhIjoxfQ.eyJhIjoxfQ.eA").ok());
}

}  // namespace
}  // namespace chat
