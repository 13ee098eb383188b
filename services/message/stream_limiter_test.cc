#include "services/message/stream_limiter.h"

#include "gtest/gtest.h"

namespace chat::message {
namespace {

TEST(StreamLimiterTest, CapsEachUserSeparatelyAndFreesOnRelease) {
  StreamLimiter limiter(2);
  std::optional<StreamLimiter::Lease> a1 = limiter.TryAcquire("a");
  std::optional<StreamLimiter::Lease> a2 = limiter.TryAcquire("a");
  ASSERT_TRUE(a1 && a2);
  EXPECT_FALSE(limiter.TryAcquire("a"));
  EXPECT_TRUE(limiter.TryAcquire("b")) << "another user has slots of their own";
  a1.reset();
  EXPECT_TRUE(limiter.TryAcquire("a"));
}

}  // namespace
}  // namespace chat::message
