#ifndef CHAT_SERVICES_AUTH_IN_MEMORY_ACCOUNT_STORE_H_
#define CHAT_SERVICES_AUTH_IN_MEMORY_ACCOUNT_STORE_H_

// An AccountStore in memory, for unit tests of the auth domain. It keeps
// the observable semantics of AuthStorage (auth_storage.cc and
// deploy/migrations): times at microsecond precision; usernames and emails
// unique ignoring case, ALREADY_EXISTS naming the taken fields; refresh
// tokens in families, retired by rotated_at, with the reuse grace, family
// revocation and sessions (a token's session is the family's own unless a
// grace replay started another); failed logins counted within a window;
// deleting a user deletes its families, tokens and failures; text
// parameters cut at the first NUL, as libpq sends them. Every method
// runs under one mutex, so each is atomic like the transaction it stands
// for; stricter in one place: two registrations racing for one name can
// get a bare ALREADY_EXISTS from PostgreSQL's unique index, here always
// the one naming the fields.
//
//   InMemoryAccountStore store;
//   Accounts accounts(&store, signer.get(), &hasher, &clock, {});

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/auth/accounts.h"

namespace chat::auth {

class InMemoryAccountStore final : public AccountStore {
 public:
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

  // For tests: how many refresh tokens and families the user has, revoked
  // or not, and how many failed logins are on record.
  size_t TokenCount(absl::string_view user_id) const;
  size_t FamilyCount(absl::string_view user_id) const;
  size_t FailureCount(absl::string_view user_id) const;

 private:
  struct Family {
    std::string user_id;
    absl::Time created_at;
    std::optional<absl::Time> revoked_at;
  };
  struct Token {
    std::string user_id;
    std::string family_id;
    absl::Time created_at;
    absl::Time expires_at;
    std::optional<absl::Time> rotated_at;
    std::optional<std::string> session_id;  // nullopt: the family's own
  };

  // ALREADY_EXISTS naming the fields another account already uses.
  absl::Status CheckConflicts(const std::string& own_id,
                              const std::optional<std::string>& username,
                              const std::optional<std::string>& email) const;
  // The token's session: its own session id, or its family's id.
  static std::string SessionOf(const Token& token);
  // A family of the user with a token of session `session`, if any.
  std::optional<std::string> FamilyOfSession(const std::string& user_id,
                                             const std::string& session) const;
  void InsertToken(const std::string& hash, const std::string& user_id,
                   const std::string& family_id, absl::Time now,
                   absl::Time expires_at, const std::string& session_id);

  mutable std::mutex mutex_;
  std::map<std::string, UserRecord> users_;          // by id
  std::map<std::string, Family> families_;           // by id
  std::map<std::string, Token> tokens_;              // by token hash
  std::multimap<std::string, absl::Time> failures_;  // by user id
};

}  // namespace chat::auth

#endif  // CHAT_SERVICES_AUTH_IN_MEMORY_ACCOUNT_STORE_H_
