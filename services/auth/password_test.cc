#include "services/auth/password.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chat::auth {
namespace {

using ::testing::StartsWith;

TEST(PasswordHasherTest, HashIsArgon2idPhcWithTheParameters) {
  PasswordHasher hasher;
  absl::StatusOr<std::string> hash = hasher.Hash("Passw0rd!");
  ASSERT_TRUE(hash.ok());
  EXPECT_THAT(*hash, StartsWith("$argon2id$v=19$m=19456,t=2,p=1$"));
  EXPECT_NE(*hash, *hasher.Hash("Passw0rd!")) << "salts must differ";
}

TEST(PasswordHasherTest, VerifiesOnlyTheRightPassword) {
  PasswordHasher hasher;
  const std::string hash = *hasher.Hash("Passw0rd!");
  EXPECT_TRUE(hasher.Verify("Passw0rd!", hash));
  EXPECT_FALSE(hasher.Verify("passw0rd!", hash));
  EXPECT_FALSE(hasher.Verify("", hash));
  EXPECT_FALSE(hasher.Verify("Passw0rd!", "not a phc string"));
}

TEST(PasswordHasherTest, WeakerParametersNeedRehash) {
  PasswordHasher weak({.memory_kib = 8192, .iterations = 1, .parallelism = 1});
  PasswordHasher current;
  const std::string old_hash = *weak.Hash("Passw0rd!");
  EXPECT_TRUE(current.Verify("Passw0rd!", old_hash))
      << "old hashes still verify";
  EXPECT_TRUE(current.NeedsRehash(old_hash));
  EXPECT_FALSE(current.NeedsRehash(*current.Hash("Passw0rd!")));
  EXPECT_TRUE(current.NeedsRehash("garbage"));
}

}  // namespace
}  // namespace chat::auth
