#include "common/ids.h"

#include <set>

#include "gtest/gtest.h"

namespace chat {
namespace {

TEST(IdsTest, UuidV7HasVersionAndVariant) {
  const std::string id = NewUuidV7();
  ASSERT_TRUE(IsUuid(id)) << id;
  EXPECT_EQ(id[14], '7');
  EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b');
}

// Ids never go back in time within a process, so the tests below use times
// later than any id made before them.
TEST(IdsTest, TimestampIsTheMilliseconds) {
  const absl::Time t = absl::FromUnixMillis(0x0290F3A0B1C2);
  EXPECT_EQ(NewUuidV7(t).substr(0, 13), "0290f3a0-b1c2");
}

TEST(IdsTest, IdsOfOneProcessStrictlyIncrease) {
  // Many ids in the same millisecond still sort in creation order.
  const absl::Time t = absl::FromUnixMillis(3000000000000);
  std::string previous = NewUuidV7(t);
  for (int i = 0; i < 10000; ++i) {
    std::string next = NewUuidV7(t);
    ASSERT_LT(previous, next);
    previous = next;
  }
}

TEST(IdsTest, LaterTimeSortsLater) {
  const std::string earlier = NewUuidV7(absl::FromUnixMillis(4000000000000));
  const std::string later = NewUuidV7(absl::FromUnixMillis(4000000005000));
  EXPECT_LT(earlier, later);
  EXPECT_NE(earlier.substr(0, 13), later.substr(0, 13));
}

TEST(IdsTest, ClockSteppingBackStillIncreases) {
  const std::string later = NewUuidV7(absl::FromUnixMillis(5000000000000));
  EXPECT_LT(later, NewUuidV7(absl::FromUnixMillis(1000000000000)));
}

TEST(IdsTest, IsUuidRejectsOtherShapes) {
  EXPECT_TRUE(IsUuid("0190F3A0-B1C2-7DEF-8123-456789ABCDEF"));
  EXPECT_FALSE(IsUuid(""));
  EXPECT_FALSE(IsUuid("0190f3a0b1c27def8123456789abcdef"));
  EXPECT_FALSE(IsUuid("0190f3a0-b1c2-7def-8123-456789abcdeg"));
  EXPECT_FALSE(IsUuid("0190f3a0-b1c2-7def-8123-456789abcdef0"));
  EXPECT_FALSE(IsUuid("'; drop table users; --------------"));
}

}  // namespace
}  // namespace chat
