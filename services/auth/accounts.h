#ifndef CHAT_SERVICES_AUTH_ACCOUNTS_H_
#define CHAT_SERVICES_AUTH_ACCOUNTS_H_

// The auth domain of docs/api.md "Auth": registration, login by username or
// email with a per-account failed-login throttle, single-use refresh tokens
// in families with reuse detection, logout, profile changes and account
// deletion. No gRPC, no SQL: a test builds it with a storage and a clock.

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/jwt.h"
#include "services/auth/password.h"

namespace chat::auth {

struct UserRecord {
  std::string id;
  std::string username;
  std::string email;
  std::string password_hash;
  absl::Time created_at;
  absl::Time updated_at;
};

// Fields of an account to change; unset ones stay.
struct AccountChange {
  std::optional<std::string> username;
  std::optional<std::string> email;
  std::optional<std::string> password_hash;
};

enum class RotationOutcome {
  kRotated,      // a new token replaced the presented one
  kGraceReplay,  // retired token replayed within the grace: new token, no
                 // revocation
  kReuse,        // retired token replayed after the grace: family revoked
  kInvalid,      // unknown, expired, or its family revoked
};

struct Rotation {
  RotationOutcome outcome;
  std::string user_id;
  std::string family_id;
  // The session the new token belongs to (the access token's `sid`): the
  // presented token's, or a new one for a grace replay's twin.
  std::string session_id;
};

// What the auth domain needs of storage (services/auth/auth_storage.h keeps
// it in PostgreSQL). Every method is one transaction.
class AccountStore {
 public:
  virtual ~AccountStore() = default;

  // ALREADY_EXISTS, naming the taken fields, when the username or the email
  // is taken (ignoring case).
  virtual absl::StatusOr<UserRecord> CreateUser(const UserRecord& user) = 0;
  // By username or email, ignoring case. NOT_FOUND when there is none.
  virtual absl::StatusOr<UserRecord> FindUserByLogin(
      absl::string_view login) = 0;
  virtual absl::StatusOr<UserRecord> FindUserById(absl::string_view id) = 0;
  virtual absl::StatusOr<UserRecord> UpdateUser(absl::string_view id,
                                                const AccountChange& change,
                                                absl::Time now) = 0;
  // Removes the account; everything that references it goes with it.
  virtual absl::Status DeleteUser(absl::string_view id) = 0;

  // Starts a refresh-token family (a login) with its first token.
  virtual absl::Status StartFamily(absl::string_view user_id,
                                   absl::string_view family_id,
                                   absl::string_view token_hash, absl::Time now,
                                   absl::Time expires_at) = 0;
  // Trades the token with old_hash for one with new_hash, under a row lock so
  // that concurrent refreshes of one token are serialized.
  // A grace replay's new token starts a session of its own, new_session_id.
  virtual absl::StatusOr<Rotation> Rotate(absl::string_view user_id,
                                          absl::string_view old_hash,
                                          absl::string_view new_hash,
                                          absl::string_view new_session_id,
                                          absl::Time now, absl::Time expires_at,
                                          absl::Duration grace) = 0;
  // Revokes the family of the token. NOT_FOUND when the token is unknown.
  virtual absl::Status RevokeFamilyOf(absl::string_view user_id,
                                      absl::string_view token_hash,
                                      absl::Time now) = 0;
  // Ends every session of the user but keep_session_id: revokes every
  // other family, and drops the tokens of that family's other sessions
  // (twins made by grace replays).
  virtual absl::Status EndOtherSessions(absl::string_view user_id,
                                        absl::string_view keep_session_id,
                                        absl::Time now) = 0;

  // Takes one of the max_failures password checks an account may have
  // within window before now, counted as a failure until
  // ClearLoginFailures: checks in parallel each take their own, so no more
  // than max_failures are ever evaluated. When none is left: the time the
  // oldest failure leaves the window, and nothing is taken.
  virtual absl::StatusOr<std::optional<absl::Time>> ReserveLoginAttempt(
      absl::string_view user_id, int max_failures, absl::Duration window,
      absl::Time now) = 0;
  virtual absl::Status ClearLoginFailures(absl::string_view user_id) = 0;
};

struct AccountsOptions {
  std::string issuer = "chat-backend";
  std::string audience = "chat-backend";
  absl::Duration access_token_ttl = absl::Minutes(15);
  absl::Duration refresh_token_ttl = absl::Hours(24 * 30);
  // A retired refresh token presented again within this time is a concurrent
  // refresh (two tabs), not a theft.
  absl::Duration refresh_reuse_grace = absl::Seconds(10);
  int max_failed_logins = 10;
  absl::Duration failed_login_window = absl::Minutes(15);
};

struct IssuedTokens {
  std::string access_token;
  std::string refresh_token;
  absl::Duration expires_in;
};

struct Session {
  UserRecord user;
  IssuedTokens tokens;
};

struct Registration {
  std::string username;
  std::string email;
  std::string password;
};

struct ProfileUpdate {
  std::optional<std::string> username;
  std::optional<std::string> email;
  std::optional<std::string> new_password;
  std::string current_password;
};

class Accounts {
 public:
  Accounts(AccountStore* storage, const JwtSigner* signer,
           const PasswordHasher* hasher, const Clock* clock,
           AccountsOptions options);

  // INVALID_ARGUMENT listing every broken rule; ALREADY_EXISTS naming the
  // taken username or email.
  absl::StatusOr<Session> Register(const Registration& registration);
  // UNAUTHENTICATED with one message whichever part was wrong;
  // RESOURCE_EXHAUSTED with a retry delay while the account is throttled.
  absl::StatusOr<Session> Login(absl::string_view login,
                                absl::string_view password);
  absl::StatusOr<IssuedTokens> Refresh(absl::string_view refresh_token);
  absl::Status Logout(absl::string_view refresh_token);

  // The caller is identified by the claims of a verified access token.
  absl::StatusOr<UserRecord> GetProfile(const AccessClaims& caller);
  absl::StatusOr<UserRecord> UpdateProfile(const AccessClaims& caller,
                                           const ProfileUpdate& update);
  absl::Status DeleteAccount(const AccessClaims& caller,
                             absl::string_view current_password);

 private:
  absl::StatusOr<IssuedTokens> StartSession(const UserRecord& user);
  absl::StatusOr<IssuedTokens> Issue(absl::string_view user_id,
                                     absl::string_view session_id,
                                     std::string refresh_token);
  // OK when password is the account's; counts failures toward the throttle.
  absl::Status CheckPassword(const UserRecord& user, absl::string_view password,
                             absl::string_view field);

  AccountStore* storage_;
  const JwtSigner* signer_;
  const PasswordHasher* hasher_;
  const Clock* clock_;
  AccountsOptions options_;
  std::string dummy_hash_;  // verified against for unknown logins
};

// A new refresh token of a user: base64url of the user id's 16 bytes and
// 256 random bits. The user id in it lets every lookup filter by user_id
// (the schema can be distributed by it); the random part is the secret.
std::string NewRefreshToken(absl::string_view user_id);

// What a presented refresh token refers to: its user and the SHA-256 (hex)
// that is all the database keeps of it.
struct RefreshTokenRef {
  std::string user_id;
  std::string hash;
};
// nullopt when `token` is not of our form.
std::optional<RefreshTokenRef> ParseRefreshToken(absl::string_view token);

}  // namespace chat::auth

#endif  // CHAT_SERVICES_AUTH_ACCOUNTS_H_
