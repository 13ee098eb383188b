#include "common/config.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

using ::chat::testing::StatusIs;

TEST(ConfigTest, EnvOrFallsBackWhenUnsetOrEmpty) {
  unsetenv("CHAT_TEST_VALUE");
  EXPECT_EQ(EnvOr("CHAT_TEST_VALUE", "fallback"), "fallback");
  setenv("CHAT_TEST_VALUE", "", 1);
  EXPECT_EQ(EnvOr("CHAT_TEST_VALUE", "fallback"), "fallback");
  setenv("CHAT_TEST_VALUE", "set", 1);
  EXPECT_EQ(EnvOr("CHAT_TEST_VALUE", "fallback"), "set");
}

TEST(ConfigTest, EnvOrParsesNumbersAndDurations) {
  setenv("CHAT_TEST_NUMBER", "17", 1);
  EXPECT_EQ(EnvOr("CHAT_TEST_NUMBER", 3), 17);
  setenv("CHAT_TEST_NUMBER", "seventeen", 1);
  EXPECT_EQ(EnvOr("CHAT_TEST_NUMBER", 3), 3);
  setenv("CHAT_TEST_DURATION", "90s", 1);
  EXPECT_EQ(EnvOr("CHAT_TEST_DURATION", absl::Seconds(1)), absl::Seconds(90));
}

TEST(ConfigTest, SecretFromEnvironmentThenFile) {
  unsetenv("CHAT_TEST_SECRET");
  unsetenv("CHAT_TEST_SECRET_FILE");
  EXPECT_THAT(ReadSecret("CHAT_TEST_SECRET"),
              StatusIs(absl::StatusCode::kNotFound));

  const std::string path = ::testing::TempDir() + "/secret";
  std::ofstream(path) << "from-file\n";
  setenv("CHAT_TEST_SECRET_FILE", path.c_str(), 1);
  EXPECT_EQ(*ReadSecret("CHAT_TEST_SECRET"), "from-file");

  setenv("CHAT_TEST_SECRET", "from-env", 1);
  EXPECT_EQ(*ReadSecret("CHAT_TEST_SECRET"), "from-env");
  std::remove(path.c_str());
}

TEST(ConfigTest, MissingSecretFileIsNotFound) {
  unsetenv("CHAT_TEST_SECRET2");
  setenv("CHAT_TEST_SECRET2_FILE", "/nonexistent/secret", 1);
  EXPECT_THAT(ReadSecret("CHAT_TEST_SECRET2"),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace chat
