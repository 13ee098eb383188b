#ifndef CHAT_SERVICES_AUTH_ACCOUNTS_H_
#define CHAT_SERVICES_AUTH_ACCOUNTS_H_

// The auth domain of SPEC.md "Auth": registration, login by username or
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
#include "services/auth/auth_storage.h"
#include "services/auth/password.h"

namespace chat::auth {

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
  Accounts(AuthStorage* storage, const JwtSigner* signer,
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

  AuthStorage* storage_;
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
