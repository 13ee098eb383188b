#include "common/token_cache.h"

#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;

const absl::Time kNow = absl::FromUnixSeconds(1767225600);

// Accepts "good-*" tokens that expire 15 minutes after kNow, and counts
// how often it is asked.
class CountingVerifier final : public AccessTokenVerifier {
 public:
  absl::StatusOr<AccessClaims> Verify(absl::string_view token,
                                      absl::Time now) const override {
    ++calls;
    AccessClaims claims;
    claims.subject = std::string(token);
    claims.expires_at = kNow + absl::Minutes(15);
    if (token.substr(0, 5) != "good-") return absl::UnauthenticatedError("bad");
    if (now + absl::Seconds(60) >= claims.expires_at + absl::Seconds(120)) {
      return absl::UnauthenticatedError("expired");
    }
    return claims;
  }
  mutable int calls = 0;
};

TEST(CachingVerifierTest, VerifiesEachGoodTokenOnce) {
  CountingVerifier inner;
  CachingVerifier cache(&inner);
  EXPECT_EQ(cache.Verify("good-1", kNow)->subject, "good-1");
  EXPECT_EQ(cache.Verify("good-1", kNow + absl::Minutes(1))->subject, "good-1");
  EXPECT_EQ(inner.calls, 1);
  EXPECT_EQ(cache.Verify("good-2", kNow)->subject, "good-2");
  EXPECT_EQ(inner.calls, 2);
}

TEST(CachingVerifierTest, NeverRemembersFailures) {
  CountingVerifier inner;
  CachingVerifier cache(&inner);
  EXPECT_THAT(cache.Verify("bad", kNow),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(cache.Verify("bad", kNow),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(inner.calls, 2);
}

TEST(CachingVerifierTest, AsksAgainOnceTheTokenExpires) {
  CountingVerifier inner;
  CachingVerifier cache(&inner);
  ASSERT_THAT(cache.Verify("good-1", kNow), IsOk());
  // At exp the cache lets go; the verifier decides (here: still within its
  // skew, so it answers, but the answer is not cached past exp).
  ASSERT_THAT(cache.Verify("good-1", kNow + absl::Minutes(15)), IsOk());
  EXPECT_EQ(inner.calls, 2);
  EXPECT_THAT(cache.Verify("good-1", kNow + absl::Minutes(17)),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(inner.calls, 3);
}

TEST(CachingVerifierTest, AFullCacheStartsOver) {
  CountingVerifier inner;
  CachingVerifier cache(&inner, 2);
  ASSERT_THAT(cache.Verify("good-1", kNow), IsOk());
  ASSERT_THAT(cache.Verify("good-2", kNow), IsOk());
  ASSERT_THAT(cache.Verify("good-3", kNow),
              IsOk());  // empties, then keeps good-3
  ASSERT_THAT(cache.Verify("good-3", kNow), IsOk());
  EXPECT_EQ(inner.calls, 3);
  ASSERT_THAT(cache.Verify("good-1", kNow), IsOk());
  EXPECT_EQ(inner.calls, 4);
}

}  // namespace
}  // namespace chat
