#ifndef CHAT_COMMON_EXTERNAL_USERS_H_
#define CHAT_COMMON_EXTERNAL_USERS_H_

// Profile rows for users of the external identity provider: the first time
// a new `sub` calls, a users row with that id is created, so that their
// conversations have an owner. Such a row has no password: it cannot log in
// here, only through its provider.

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/caller.h"
#include "common/db.h"
#include "common/jwt.h"

namespace chat {

class ExternalUsers final : public ExternalUserRegistry {
 public:
  explicit ExternalUsers(DbPool* pool) : pool_(pool) {}

  static std::vector<PreparedStatement> Statements();

  // Creates the profile row of claims.subject unless it exists; remembers
  // the users it has seen, so later calls cost nothing.
  absl::Status Ensure(const AccessClaims& claims) override;

 private:
  DbPool* pool_;
  std::mutex mutex_;
  std::set<std::string> seen_;
};

}  // namespace chat

#endif  // CHAT_COMMON_EXTERNAL_USERS_H_
