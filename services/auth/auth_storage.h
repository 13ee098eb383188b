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
#include "services/auth/accounts.h"

namespace chat::auth {

// AccountStore in PostgreSQL.
class AuthStorage final : public AccountStore {
 public:
  explicit AuthStorage(DbPool* pool) : pool_(pool) {}

  static std::vector<PreparedStatement> Statements();

  absl::StatusOr<UserRecord> CreateUser(const UserRecord& user) override;
  absl::StatusOr<UserRecord> FindUserByLogin(absl::string_view login) override;
  absl::StatusOr<UserRecord> FindUserById(absl::string_view id) override;
  absl::StatusOr<UserRecord> UpdateUser(absl::string_view id,
                                        const AccountChange& change,
                                        absl::Time now) override;
  absl::Status DeleteUser(absl::string_view id) override;

  absl::Status StartFamily(absl::string_view user_id,
                           absl::string_view family_id,
                           absl::string_view token_hash, absl::Time now,
                           absl::Time expires_at) override;
  absl::StatusOr<Rotation> Rotate(absl::string_view user_id,
                                  absl::string_view old_hash,
                                  absl::string_view new_hash,
                                  absl::string_view new_session_id,
                                  absl::Time now, absl::Time expires_at,
                                  absl::Duration grace) override;
  absl::Status RevokeFamilyOf(absl::string_view user_id,
                              absl::string_view token_hash,
                              absl::Time now) override;
  absl::Status EndOtherSessions(absl::string_view user_id,
                                absl::string_view keep_session_id,
                                absl::Time now) override;

  absl::StatusOr<std::optional<absl::Time>> ReserveLoginAttempt(
      absl::string_view user_id, int max_failures, absl::Duration window,
      absl::Time now) override;
  absl::Status ClearLoginFailures(absl::string_view user_id) override;

 private:
  DbPool* pool_;
};

}  // namespace chat::auth

#endif  // CHAT_SERVICES_AUTH_AUTH_STORAGE_H_
