// The auth domain against a real, migrated PostgreSQL, with a fake clock for
// expiry, the reuse grace and the throttle window.

#include "services/auth/accounts.h"

#include <thread>
#include <vector>

#include "common/db.h"
#include "common/errors.h"
#include "common/status_matchers.h"
#include "common/test_keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "openssl/evp.h"
#include "openssl/pem.h"
#include "openssl/rsa.h"
#include "services/auth/auth_storage.h"
#include "tests/integration/database_test.h"
#include "tests/integration/test_database.h"

namespace chat::auth {
namespace {

using ::chat::testing::IsOk;
using ::chat::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class AccountsTest : public ::chat::testing::DatabaseTest {
 protected:
  void SetUpDatabase() override {
    // The service's own least-privilege role, as in production.
    pool_ = DbPool::Create({.url = db_->RoleUrl("chat_auth"),
                            .size = 4,
                            .statements = AuthStorage::Statements()});
    storage_ = std::make_unique<AuthStorage>(pool_.get());
    static const std::string* pem =
        new std::string(::chat::testing::NewRsaPrivateKeyPem());
    signer_ = *JwtSigner::FromPem(*pem);
    keys_.Add(signer_->public_key());
    accounts_ = std::make_unique<Accounts>(
        storage_.get(), signer_.get(), &hasher_, &clock_, AccountsOptions{});
  }

  Session MustRegister(const std::string& username) {
    absl::StatusOr<Session> session =
        accounts_->Register({username, username + "@example.com", "Passw0rd"});
    EXPECT_THAT(session, IsOk());
    return *session;
  }

  AccessClaims ClaimsOf(const Session& session) {
    return ClaimsOf(session.tokens);
  }

  AccessClaims ClaimsOf(const IssuedTokens& tokens) {
    JwtVerifier verifier(
        &keys_, {.issuer = "chat-backend", .audience = "chat-backend"});
    absl::StatusOr<AccessClaims> claims =
        verifier.Verify(tokens.access_token, clock_.Now());
    EXPECT_THAT(claims, IsOk());
    return *claims;
  }

  std::unique_ptr<DbPool> pool_;
  std::unique_ptr<AuthStorage> storage_;
  std::unique_ptr<JwtSigner> signer_;
  StaticKeySet keys_;
  PasswordHasher hasher_;
  FakeClock clock_{absl::FromUnixSeconds(1767225600)};
  std::unique_ptr<Accounts> accounts_;
};

TEST_F(AccountsTest, RegisterReturnsTheUserAndVerifiableTokens) {
  Session session = MustRegister("alice");
  EXPECT_EQ(session.user.username, "alice");
  EXPECT_EQ(session.user.email, "alice@example.com");
  EXPECT_THAT(session.user.password_hash, StartsWith("$argon2id$"));
  EXPECT_EQ(session.user.created_at, clock_.Now());
  EXPECT_EQ(session.tokens.expires_in, absl::Minutes(15));
  // The user id and 256 random bits, base64url.
  EXPECT_EQ(ParseRefreshToken(session.tokens.refresh_token)->user_id,
            session.user.id);
  AccessClaims claims = ClaimsOf(session);
  EXPECT_EQ(claims.subject, session.user.id);
  EXPECT_EQ(claims.expires_at, clock_.Now() + absl::Minutes(15));
  EXPECT_FALSE(claims.session_id.empty());
}

TEST_F(AccountsTest, RegisterListsEveryViolationAndCreatesNothing) {
  absl::StatusOr<Session> bad =
      accounts_->Register({"a!", "not-an-email", "short"});
  ASSERT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<std::string> fields;
  for (const FieldViolation& v : ViolationsOf(bad.status()))
    fields.push_back(v.field);
  EXPECT_THAT(fields, ElementsAre("username", "username", "email", "password",
                                  "password", "password"));
  EXPECT_THAT(storage_->FindUserByLogin("a!"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AccountsTest, TakenUsernameOrEmailIgnoringCaseIs409NamingTheFields) {
  MustRegister("alice");
  absl::StatusOr<Session> same_name =
      accounts_->Register({"ALICE", "other@example.com", "Passw0rd"});
  ASSERT_THAT(same_name, StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(ViolationsOf(same_name.status()),
              ElementsAre(FieldViolation{"username", "is already taken"}));
  absl::StatusOr<Session> both =
      accounts_->Register({"Alice", "ALICE@Example.com", "Passw0rd"});
  EXPECT_EQ(ViolationsOf(both.status()).size(), 2u);
}

TEST_F(AccountsTest, LoginByUsernameOrEmailIgnoringCase) {
  Session registered = MustRegister("bob");
  for (const char* login :
       {"bob", "BOB", "bob@example.com", "Bob@Example.COM"}) {
    absl::StatusOr<Session> session = accounts_->Login(login, "Passw0rd");
    ASSERT_THAT(session, IsOk()) << login;
    EXPECT_EQ(session->user.id, registered.user.id);
  }
}

TEST_F(AccountsTest, WrongPasswordAndUnknownLoginGiveTheSameAnswer) {
  MustRegister("carol");
  absl::StatusOr<Session> wrong = accounts_->Login("carol", "Wr0ngpass");
  absl::StatusOr<Session> unknown = accounts_->Login("nobody", "Passw0rd");
  ASSERT_THAT(wrong, StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(wrong.status(), unknown.status());
  EXPECT_THAT(accounts_->Login("", ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(AccountsTest, TenFailuresThrottleTheAccountUntilTheWindowPasses) {
  MustRegister("dave");
  for (int i = 0; i < 10; ++i) {
    EXPECT_THAT(accounts_->Login("dave", "Wr0ngpass"),
                StatusIs(absl::StatusCode::kUnauthenticated));
    clock_.Advance(absl::Seconds(10));
  }
  // Even the right password is refused while throttled.
  absl::StatusOr<Session> throttled = accounts_->Login("dave", "Passw0rd");
  ASSERT_THAT(throttled, StatusIs(absl::StatusCode::kResourceExhausted));
  // The first failure leaves the window 15 minutes after it happened.
  EXPECT_EQ(RetryAfterOf(throttled.status()),
            absl::Minutes(15) - absl::Seconds(100));
  // Another account is not affected.
  MustRegister("erin");
  EXPECT_THAT(accounts_->Login("erin", "Passw0rd"), IsOk());

  clock_.Advance(absl::Minutes(15) - absl::Seconds(100));
  EXPECT_THAT(accounts_->Login("dave", "Passw0rd"), IsOk());
}

// The check, the password test and the count are one step per attempt: no
// more than ten wrong passwords are ever tried, however many arrive at once.
TEST_F(AccountsTest, ParallelWrongPasswordsAreEvaluatedAtMostTenTimes) {
  MustRegister("dora");
  constexpr int kAttempts = 40;
  std::vector<absl::Status> results(kAttempts);
  std::vector<std::thread> attackers;
  for (int i = 0; i < kAttempts; ++i) {
    attackers.emplace_back([&, i] {
      results[i] = accounts_->Login("dora", "Wr0ngpass").status();
    });
  }
  for (std::thread& attacker : attackers) attacker.join();
  int unauthenticated = 0, throttled = 0;
  for (const absl::Status& status : results) {
    unauthenticated += absl::IsUnauthenticated(status);
    throttled += absl::IsResourceExhausted(status);
  }
  EXPECT_EQ(unauthenticated, 10);
  EXPECT_EQ(throttled, kAttempts - 10);
  EXPECT_THAT(accounts_->Login("dora", "Passw0rd"),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(AccountsTest, ASuccessResetsTheFailureCount) {
  MustRegister("frank");
  for (int i = 0; i < 9; ++i) (void)accounts_->Login("frank", "Wr0ngpass");
  ASSERT_THAT(accounts_->Login("frank", "Passw0rd"), IsOk());
  for (int i = 0; i < 9; ++i) (void)accounts_->Login("frank", "Wr0ngpass");
  EXPECT_THAT(accounts_->Login("frank", "Passw0rd"), IsOk());
}

TEST_F(AccountsTest, RefreshRotatesTheToken) {
  Session session = MustRegister("gina");
  absl::StatusOr<IssuedTokens> next =
      accounts_->Refresh(session.tokens.refresh_token);
  ASSERT_THAT(next, IsOk());
  EXPECT_NE(next->refresh_token, session.tokens.refresh_token);
  EXPECT_NE(next->access_token, session.tokens.access_token);
  EXPECT_THAT(accounts_->Refresh(next->refresh_token), IsOk());
  EXPECT_THAT(accounts_->Refresh(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(accounts_->Refresh("not-a-token"),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(AccountsTest, ReplayWithinGraceGetsAFreshPairAndRevokesNothing) {
  Session session = MustRegister("hank");
  absl::StatusOr<IssuedTokens> first =
      accounts_->Refresh(session.tokens.refresh_token);
  ASSERT_THAT(first, IsOk());
  clock_.Advance(absl::Seconds(9));
  absl::StatusOr<IssuedTokens> second =
      accounts_->Refresh(session.tokens.refresh_token);
  ASSERT_THAT(second, IsOk());
  EXPECT_NE(second->refresh_token, first->refresh_token);
  // Both tabs go on.
  EXPECT_THAT(accounts_->Refresh(first->refresh_token), IsOk());
  EXPECT_THAT(accounts_->Refresh(second->refresh_token), IsOk());
}

TEST_F(AccountsTest, ReplayAfterGraceRevokesTheWholeFamily) {
  Session session = MustRegister("ivan");
  Session other_login = *accounts_->Login("ivan", "Passw0rd");
  absl::StatusOr<IssuedTokens> first =
      accounts_->Refresh(session.tokens.refresh_token);
  ASSERT_THAT(first, IsOk());
  absl::StatusOr<IssuedTokens> second =
      accounts_->Refresh(first->refresh_token);
  ASSERT_THAT(second, IsOk());
  clock_.Advance(absl::Seconds(11));
  EXPECT_THAT(
      accounts_->Refresh(session.tokens.refresh_token),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("revoked")));
  // Every token descended from that login is dead, even the newest...
  EXPECT_THAT(accounts_->Refresh(second->refresh_token),
              StatusIs(absl::StatusCode::kUnauthenticated));
  // ...but another login of the same user is not.
  EXPECT_THAT(accounts_->Refresh(other_login.tokens.refresh_token), IsOk());
}

TEST_F(AccountsTest, ConcurrentRefreshesOfOneTokenBothSucceed) {
  Session session = MustRegister("judy");
  absl::StatusOr<IssuedTokens> results[2];
  std::thread tabs[2];
  for (int i = 0; i < 2; ++i) {
    tabs[i] = std::thread([&, i] {
      results[i] = accounts_->Refresh(session.tokens.refresh_token);
    });
  }
  for (std::thread& tab : tabs) tab.join();
  ASSERT_THAT(results[0], IsOk());
  ASSERT_THAT(results[1], IsOk());
  EXPECT_NE(results[0]->refresh_token, results[1]->refresh_token);
}

// A replay within the grace makes a twin session; whatever ends the family,
// or the other sessions, ends the twin too.
TEST_F(AccountsTest, GraceTwinsDieWithTheirFamily) {
  Session session = MustRegister("jack");
  absl::StatusOr<IssuedTokens> tab =
      accounts_->Refresh(session.tokens.refresh_token);
  absl::StatusOr<IssuedTokens> twin =
      accounts_->Refresh(session.tokens.refresh_token);
  ASSERT_THAT(tab, IsOk());
  ASSERT_THAT(twin, IsOk());
  EXPECT_NE(ClaimsOf(*tab).session_id, ClaimsOf(*twin).session_id);
  ASSERT_THAT(accounts_->Logout(tab->refresh_token), IsOk());
  EXPECT_THAT(accounts_->Refresh(twin->refresh_token),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(AccountsTest, PasswordChangeEndsTheTwinOfTheChangingSession) {
  Session session = MustRegister("jill");
  absl::StatusOr<IssuedTokens> mine =
      accounts_->Refresh(session.tokens.refresh_token);
  absl::StatusOr<IssuedTokens> twin =
      accounts_->Refresh(session.tokens.refresh_token);
  ASSERT_THAT(mine, IsOk());
  ASSERT_THAT(twin, IsOk());
  // The twin's descendants are the twin's session as well.
  absl::StatusOr<IssuedTokens> twin_next =
      accounts_->Refresh(twin->refresh_token);
  ASSERT_THAT(twin_next, IsOk());
  ASSERT_THAT(accounts_->UpdateProfile(ClaimsOf(*mine),
                                       {.new_password = "N3wPassword",
                                        .current_password = "Passw0rd"}),
              IsOk());
  EXPECT_THAT(accounts_->Refresh(twin_next->refresh_token),
              StatusIs(absl::StatusCode::kUnauthenticated));
  // The token `mine` rotated is still within its grace, and of the session
  // that stays: replayed, it would mint a new twin that outlived the change.
  EXPECT_THAT(accounts_->Refresh(session.tokens.refresh_token),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(accounts_->Refresh(mine->refresh_token), IsOk());

  // And from the twin's side: the original session is the one that ends.
  Session other = *accounts_->Login("jill", "N3wPassword");
  absl::StatusOr<IssuedTokens> first =
      accounts_->Refresh(other.tokens.refresh_token);
  absl::StatusOr<IssuedTokens> second =
      accounts_->Refresh(other.tokens.refresh_token);
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  ASSERT_THAT(accounts_->UpdateProfile(ClaimsOf(*second),
                                       {.new_password = "Th1rdPassword",
                                        .current_password = "N3wPassword"}),
              IsOk());
  EXPECT_THAT(accounts_->Refresh(first->refresh_token),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(accounts_->Refresh(second->refresh_token), IsOk());
}

TEST_F(AccountsTest, ExpiredRefreshTokenIsRefused) {
  Session session = MustRegister("kate");
  clock_.Advance(absl::Hours(24 * 30) + absl::Seconds(1));
  EXPECT_THAT(accounts_->Refresh(session.tokens.refresh_token),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(AccountsTest, AnAccessTokenIsNotARefreshToken) {
  Session session = MustRegister("liam");
  EXPECT_THAT(accounts_->Refresh(session.tokens.access_token),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(AccountsTest, LogoutRevokesTheFamily) {
  Session session = MustRegister("mona");
  absl::StatusOr<IssuedTokens> next =
      accounts_->Refresh(session.tokens.refresh_token);
  ASSERT_THAT(next, IsOk());
  EXPECT_THAT(accounts_->Logout(next->refresh_token), IsOk());
  EXPECT_THAT(accounts_->Refresh(next->refresh_token),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(accounts_->Logout(next->refresh_token), IsOk()) << "idempotent";
  EXPECT_THAT(accounts_->Logout("unknown"),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(accounts_->Logout(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(AccountsTest, PasswordChangeRevokesOtherSessionsOnly) {
  Session here = MustRegister("nina");
  Session elsewhere = *accounts_->Login("nina", "Passw0rd");
  absl::StatusOr<UserRecord> updated = accounts_->UpdateProfile(
      ClaimsOf(here),
      {.new_password = "N3wPassword", .current_password = "Passw0rd"});
  ASSERT_THAT(updated, IsOk());
  EXPECT_THAT(accounts_->Refresh(here.tokens.refresh_token), IsOk());
  EXPECT_THAT(accounts_->Refresh(elsewhere.tokens.refresh_token),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(accounts_->Login("nina", "Passw0rd"),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(accounts_->Login("nina", "N3wPassword"), IsOk());
}

TEST_F(AccountsTest, UpdateProfileChangesOnlyWhatIsGiven) {
  Session session = MustRegister("omar");
  MustRegister("taken");
  clock_.Advance(absl::Minutes(1));
  absl::StatusOr<UserRecord> updated = accounts_->UpdateProfile(
      ClaimsOf(session),
      {.email = "omar@new.example.org", .current_password = "Passw0rd"});
  ASSERT_THAT(updated, IsOk());
  EXPECT_EQ(updated->username, "omar");
  EXPECT_EQ(updated->email, "omar@new.example.org");
  EXPECT_EQ(updated->updated_at, clock_.Now());
  EXPECT_EQ(updated->created_at, session.user.created_at);

  EXPECT_THAT(accounts_->UpdateProfile(
                  ClaimsOf(session),
                  {.username = "Taken", .current_password = "Passw0rd"}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(
      accounts_->UpdateProfile(
          ClaimsOf(session), {.username = "x", .current_password = "Passw0rd"}),
      StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<UserRecord> wrong = accounts_->UpdateProfile(
      ClaimsOf(session),
      {.username = "omar2", .current_password = "Wr0ngpass"});
  EXPECT_THAT(wrong, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(storage_->FindUserById(session.user.id)->username, "omar");
}

TEST_F(AccountsTest, DeleteAccountRemovesEverything) {
  Session session = MustRegister("pete");
  AccessClaims claims = ClaimsOf(session);
  EXPECT_THAT(accounts_->DeleteAccount(claims, "Wr0ngpass"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  ASSERT_THAT(accounts_->DeleteAccount(claims, "Passw0rd"), IsOk());
  EXPECT_THAT(accounts_->GetProfile(claims),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(accounts_->Login("pete", "Passw0rd"),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(accounts_->Refresh(session.tokens.refresh_token),
              StatusIs(absl::StatusCode::kUnauthenticated));
  // The name is free again.
  MustRegister("pete");
}

TEST_F(AccountsTest, WeakerHashesAreUpgradedAtLogin) {
  PasswordHasher weak({.memory_kib = 8192, .iterations = 1, .parallelism = 1});
  Accounts old_accounts(storage_.get(), signer_.get(), &weak, &clock_,
                        AccountsOptions{});
  ASSERT_THAT(old_accounts.Register({"quinn", "quinn@example.com", "Passw0rd"}),
              IsOk());
  EXPECT_THAT(storage_->FindUserByLogin("quinn")->password_hash,
              StartsWith("$argon2id$v=19$m=8192,t=1,p=1$"));
  ASSERT_THAT(accounts_->Login("quinn", "Passw0rd"), IsOk());
  EXPECT_THAT(storage_->FindUserByLogin("quinn")->password_hash,
              StartsWith("$argon2id$v=19$m=19456,t=2,p=1$"));
  EXPECT_THAT(accounts_->Login("quinn", "Passw0rd"), IsOk());
}

}  // namespace
}  // namespace chat::auth
