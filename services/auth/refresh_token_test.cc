#include <set>

#include "gtest/gtest.h"
#include "services/auth/accounts.h"

namespace chat::auth {
namespace {

constexpr char kUser[] = "0190f3a0-b1c2-7def-8123-456789abcdef";

TEST(RefreshTokenTest, CarriesItsUserAndARandomSecret) {
  const std::string token = NewRefreshToken(kUser);
  EXPECT_EQ(token.size(), 64u);  // 48 bytes, base64url without padding
  EXPECT_EQ(token.find_first_of("+/="), std::string::npos);
  std::optional<RefreshTokenRef> ref = ParseRefreshToken(token);
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->user_id, kUser);
  EXPECT_EQ(ref->hash.size(), 64u);  // SHA-256, hex
  EXPECT_NE(ref->hash.find_first_not_of("0123456789abcdef"), 0u);

  std::set<std::string> tokens;
  for (int i = 0; i < 100; ++i) tokens.insert(NewRefreshToken(kUser));
  EXPECT_EQ(tokens.size(), 100u);
}

TEST(RefreshTokenTest, RefusesWhatIsNotOurs) {
  for (const char* token : {"", "abc", "not base64!!",
                            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}) {
    EXPECT_FALSE(ParseRefreshToken(token).has_value()) << token;
  }
  std::string token = NewRefreshToken(kUser);
  token.pop_back();  // one character short
  EXPECT_FALSE(ParseRefreshToken(token).has_value());
}

}  // namespace
}  // namespace chat::auth
