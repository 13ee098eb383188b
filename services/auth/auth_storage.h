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
  // The session the new token belongs to (the access token's `sid`): the
  // presented token's, or a new one for a grace replay's twin.
  std::string session_id;
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
  // A grace replay's new token starts a session of its own, new_session_id.
  absl::StatusOr<Rotation> Rotate(absl::string_view user_id,
                                  absl::string_view old_hash,
                                  absl::string_view new_hash,
                                  absl::string_view new_session_id,
                                  absl::Time now, absl::Time expires_at,
                                  absl::Duration grace);
  // Revokes the family of the token. NOT_FOUND when the token is unknown.
  absl::Status RevokeFamilyOf(absl::string_view user_id,
                              absl::string_view token_hash, absl::Time now);
  // Ends every session of the user but keep_session_id: revokes every
  // other family, and drops the tokens of that family's other sessions
  // (twins made by grace replays).
  absl::Status EndOtherSessions(absl::string_view user_id,
                                absl::string_view keep_session_id,
                                absl::Time now);

  // Takes one of the max_failures password checks an account may have
  // within window before now, counted as a failure until
  // ClearLoginFailures: checks in parallel each take their own, so no more
  // than max_failures are ever evaluated. When none is left: the time the
  // oldest failure leaves the window, and nothing is taken.
  absl::StatusOr<std::optional<absl::Time>> ReserveLoginAttempt(
      absl::string_view user_id, int max_failures, absl::Duration window,
      absl::Time now);
  absl::Status ClearLoginFailures(absl::string_view user_id);

 private:
  DbPool* pool_;
};

}  // namespace chat::auth

#endif  // CHAT_SERVICES_AUTH_AUTH_STORAGE_H_
