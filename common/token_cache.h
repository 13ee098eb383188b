#ifndef CHAT_COMMON_TOKEN_CACHE_H_
#define CHAT_COMMON_TOKEN_CACHE_H_

// Remembers tokens that verified, so that a client's every call with the
// same access token costs a hash lookup instead of a JSON parse and an RSA
// verification. Only successes are kept, each until its exp; a full cache
// is emptied (tokens then verify again), which bounds memory.

#include <mutex>
#include <string>
#include <unordered_map>

#include "common/jwt.h"

namespace chat {

class CachingVerifier final : public AccessTokenVerifier {
 public:
  CachingVerifier(const AccessTokenVerifier* inner, size_t capacity = 10000)
      : inner_(inner), capacity_(capacity) {}

  absl::StatusOr<AccessClaims> Verify(absl::string_view token,
                                      absl::Time now) const override;

 private:
  const AccessTokenVerifier* inner_;
  const size_t capacity_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, AccessClaims> verified_;
};

}  // namespace chat

#endif  // CHAT_COMMON_TOKEN_CACHE_H_
