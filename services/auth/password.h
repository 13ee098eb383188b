#ifndef CHAT_SERVICES_AUTH_PASSWORD_H_
#define CHAT_SERVICES_AUTH_PASSWORD_H_

// Password hashing with argon2id (libargon2), stored in PHC string form
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash). The parameters live in the
// string, so they can be raised later: NeedsRehash tells, at a successful
// login, that a stored hash is weaker than the current parameters.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace chat::auth {

struct Argon2Params {
  // OWASP's recommended minimum for argon2id: 19 MiB, 2 passes, 1 lane.
  uint32_t memory_kib = 19456;
  uint32_t iterations = 2;
  uint32_t parallelism = 1;
};

class PasswordHasher {
 public:
  explicit PasswordHasher(Argon2Params params = {}) : params_(params) {}

  absl::StatusOr<std::string> Hash(absl::string_view password) const;
  // Whether password matches the PHC string; false for a malformed string.
  bool Verify(absl::string_view password, const std::string& phc) const;
  // Whether phc was made with weaker parameters than the current ones.
  bool NeedsRehash(const std::string& phc) const;

 private:
  Argon2Params params_;
};

}  // namespace chat::auth

#endif  // CHAT_SERVICES_AUTH_PASSWORD_H_
