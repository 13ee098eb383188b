#include "services/auth/validation.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chat::auth {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;

std::vector<std::string> Descriptions(const FieldViolations& violations) {
  std::vector<std::string> out;
  for (const FieldViolation& v : violations.list())
    out.push_back(v.description);
  return out;
}

std::vector<std::string> UsernameErrors(absl::string_view username) {
  FieldViolations v;
  ValidateUsername("username", username, v);
  return Descriptions(v);
}
std::vector<std::string> EmailErrors(absl::string_view email) {
  FieldViolations v;
  ValidateEmail("email", email, v);
  return Descriptions(v);
}
std::vector<std::string> PasswordErrors(absl::string_view password) {
  FieldViolations v;
  ValidatePassword("password", password, v);
  return Descriptions(v);
}

TEST(UsernameTest, AcceptsTheAllowedShape) {
  EXPECT_THAT(UsernameErrors("abc"), IsEmpty());
  EXPECT_THAT(UsernameErrors("Alice_42"), IsEmpty());
  EXPECT_THAT(UsernameErrors(std::string(80, 'a')), IsEmpty());
}

TEST(UsernameTest, RejectsLengthAndCharacters) {
  EXPECT_THAT(UsernameErrors("ab"),
              ElementsAre("must be 3 to 80 characters long"));
  EXPECT_THAT(UsernameErrors(std::string(81, 'a')),
              ElementsAre("must be 3 to 80 characters long"));
  EXPECT_THAT(UsernameErrors("al ice"),
              ElementsAre("may contain only letters, digits and underscores"));
  EXPECT_THAT(UsernameErrors("h\xC3\xA9llo"),
              ElementsAre("may contain only letters, digits and underscores"));
  EXPECT_THAT(UsernameErrors("a-"),
              ElementsAre("must be 3 to 80 characters long",
                          "may contain only letters, digits and underscores"));
}

// ext_<sub> names the external issuer's users (common/external_users.cc):
// a local account of that name would lock one of them out.
TEST(UsernameTest, TheExternalUsersPrefixIsReserved) {
  for (const char* name :
       {"ext_0190f3a0000070008000000000000001", "EXT_x", "Ext_alice"}) {
    EXPECT_THAT(UsernameErrors(name), ElementsAre("must not start with ext_"))
        << name;
  }
  EXPECT_THAT(UsernameErrors("extra"), IsEmpty());
  EXPECT_THAT(UsernameErrors("next_one"), IsEmpty());
}

TEST(EmailTest, TheExternalUsersPlaceholderDomainIsReserved) {
  EXPECT_THAT(
      EmailErrors("0190f3a0-0000-7000-8000-000000000001@external.invalid"),
      ElementsAre("must be a valid email address"));
  EXPECT_THAT(EmailErrors("a@EXTERNAL.invalid"),
              ElementsAre("must be a valid email address"));
  EXPECT_THAT(EmailErrors("a@my-external.invalid.example.com"), IsEmpty());
}

TEST(EmailTest, AcceptsValidAddresses) {
  for (const char* email : {"a@example.com", "first.last+tag@mail.example.org",
                            "x_y@sub-domain.example.co"}) {
    EXPECT_THAT(EmailErrors(email), IsEmpty()) << email;
  }
}

TEST(EmailTest, RejectsInvalidAddresses) {
  for (const char* email :
       {"plain", "@example.com", "a@", "a@example", "a@@example.com",
        "a b@example.com", ".a@example.com", "a.@example.com",
        "a..b@example.com", "a@-example.com", "a@example.c", "a@example.123",
        " a@example.com", "a@example.com "}) {
    EXPECT_THAT(EmailErrors(email),
                ElementsAre("must be a valid email address"))
        << email;
  }
  EXPECT_THAT(EmailErrors(""), ElementsAre("is required"));
}

TEST(EmailTest, RejectsOver254Characters) {
  std::string local(64, 'a');
  std::string domain = std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                       std::string(60, 'd') + ".com";
  EXPECT_THAT(EmailErrors(local + "@" + domain),
              ElementsAre("must be at most 254 characters long"));
}

TEST(PasswordTest, AcceptsAStrongPassword) {
  EXPECT_THAT(PasswordErrors("Passw0rd"), IsEmpty());
  EXPECT_THAT(PasswordErrors("P4" + std::string(126, 'x')), IsEmpty());
}

TEST(PasswordTest, ListsEveryMissingClass) {
  EXPECT_THAT(
      PasswordErrors("short"),
      ElementsAre("must be 8 to 128 characters long",
                  "must contain an upper-case letter", "must contain a digit"));
  EXPECT_THAT(PasswordErrors("ALLUPPER1"),
              ElementsAre("must contain a lower-case letter"));
  EXPECT_THAT(PasswordErrors("NoDigitsHere"),
              ElementsAre("must contain a digit"));
  EXPECT_THAT(PasswordErrors("P4" + std::string(127, 'x')),
              ElementsAre("must be 8 to 128 characters long"));
}

TEST(PasswordTest, CountsCharactersNotBytes) {
  // 8 characters in 12 bytes: long enough.
  EXPECT_THAT(PasswordErrors("Pa1\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9x"),
              IsEmpty());
  // 7 characters in 10 bytes: too short, whatever the byte count.
  EXPECT_THAT(PasswordErrors("Pa1\xC3\xA9\xC3\xA9\xC3\xA9x"),
              ElementsAre("must be 8 to 128 characters long"));
  // 128 two-byte characters plus the required classes is too long.
  std::string many;
  for (int i = 0; i < 127; ++i) many += "\xC3\xA9";
  EXPECT_THAT(PasswordErrors("Pa1" + many),
              ElementsAre("must be 8 to 128 characters long"));
  EXPECT_THAT(PasswordErrors("Passw0rd\xFF"),
              ElementsAre("must be valid UTF-8"));
}

}  // namespace
}  // namespace chat::auth
