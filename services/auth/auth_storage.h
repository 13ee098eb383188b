#ifndef CHAT_SERVICES_AUTH_AUTH_STORAGE_H_
#define CHAT_SERVICES_AUTH_AUTH_STORAGE_H_

// The auth service's SQL: accounts, refresh-token families and failed
// logins. Every method is one transaction; the SQL lives in auth_storage.cc
// as prepared statements.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/db.h"

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
};

class AuthStorage {
 public:
  explicit AuthStorage(DbPool* pool) : pool_(pool) {}

  // The statements a pool must prepare for this class.
  static std::vector<PreparedStatement> Statements();

  // ALREADY_EXISTS, naming the taken fields, when the username or the email
  // is taken (ignoring case).
  absl::StatusOr<UserRecord> CreateUser(const UserRecord& user);
  // By username or email, ignoring case. NOT_FOUND when there is none.
  absl::StatusOr<UserRecord> FindUserByLogin(absl::string_view login);
  absl::StatusOr<UserRecord> FindUserById(absl::string_view id);
  absl::StatusOr<UserRecord> UpdateUser(absl::string_view id,
                                        const AccountChange& change,
                                        absl::Time now);
  // Removes the account; everything that references it goes with it.
  absl::Status DeleteUser(absl::string_view id);

  // Starts a refresh-token family (a login) with its first token.
  absl::Status StartFamily(absl::string_view user_id,
                           absl::string_view family_id,
                           absl::string_view token_hash, absl::Time now,
                           absl::Time expires_at);
  // Trades the token with old_hash for one with new_hash, under a row lock so
  // that concurrent refreshes of one token are serialized.
  absl::StatusOr<Rotation> Rotate(absl::string_view user_id,
                                  absl::string_view old_hash,
                                  absl::string_view new_hash, absl::Time now,
                                  absl::Time expires_at, absl::Duration grace);
  // Revokes the family of the token. NOT_FOUND when the token is unknown.
  absl::Status RevokeFamilyOf(absl::string_view user_id,
                              absl::string_view token_hash, absl::Time now);
  // Revokes every family of the user but keep_family_id.
  absl::Status RevokeOtherFamilies(absl::string_view user_id,
                                   absl::string_view keep_family_id,
                                   absl::Time now);

  // When the account has had max_failures failed logins within window
  // before now: the time the oldest of them leaves the window.
  absl::StatusOr<std::optional<absl::Time>> LockedUntil(
      absl::string_view user_id, int max_failures, absl::Duration window,
      absl::Time now);
  absl::Status RecordLoginFailure(absl::string_view user_id, absl::Time now,
                                  absl::Duration window);
  absl::Status ClearLoginFailures(absl::string_view user_id);

 private:
  DbPool* pool_;
};

}  // namespace chat::auth

#endif  // CHAT_SERVICES_AUTH_AUTH_STORAGE_H_
