#include "common/metadata.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

using ::testing::IsEmpty;
using ::testing::SizeIs;

std::vector<FieldViolation> Check(const Metadata& metadata) {
  FieldViolations violations;
  ValidateMetadata("metadata", metadata, violations);
  return violations.list();
}

TEST(MetadataTest, AcceptsTheLimits) {
  Metadata metadata;
  for (int i = 0; i < 16; ++i) {
    metadata[std::string(64 - 2, 'k') + std::to_string(10 + i)] =
        std::string(512, 'v');
  }
  EXPECT_THAT(Check(metadata), IsEmpty());
  EXPECT_THAT(Check({{"\xC3\xA9", std::string(512, 'x')}}), IsEmpty());
}

TEST(MetadataTest, ListsEveryBrokenRule) {
  Metadata metadata;
  for (int i = 0; i < 17; ++i) metadata["k" + std::to_string(i)] = "v";
  metadata[""] = "empty key";
  metadata[std::string(65, 'k')] = "long key";
  metadata["long"] = std::string(513, 'v');
  std::vector<FieldViolation> violations = Check(metadata);
  ASSERT_THAT(violations, SizeIs(4));
  EXPECT_EQ(violations[0].description, "must have at most 16 keys");
  EXPECT_EQ(violations[3].field, "metadata.long");
}

TEST(MetadataTest, CountsCharactersNotBytes) {
  std::string value;
  for (int i = 0; i < 512; ++i) value += "\xC3\xA9";
  EXPECT_THAT(Check({{"k", value}}), IsEmpty());
  EXPECT_THAT(Check({{"k", value + "x"}}), SizeIs(1));
}

TEST(MetadataTest, RejectsNul) {
  EXPECT_THAT(Check({{"k", std::string("a\0b", 3)}}), SizeIs(1));
  EXPECT_THAT(Check({{std::string("a\0b", 3), "v"}}), SizeIs(1));
}

TEST(MetadataTest, JsonRoundTrip) {
  const Metadata metadata{{"a", "x\"y"}, {"\xC3\xA9", "\n"}, {"z", ""}};
  absl::StatusOr<Metadata> back = MetadataFromJson(MetadataToJson(metadata));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, metadata);
  EXPECT_EQ(MetadataToJson({}), "{}");
}

}  // namespace
}  // namespace chat
