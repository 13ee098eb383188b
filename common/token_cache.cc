#include "common/token_cache.h"

namespace chat {

absl::StatusOr<AccessClaims> CachingVerifier::Verify(absl::string_view token,
                                                     absl::Time now) const {
  const std::string key(token);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = verified_.find(key); it != verified_.end()) {
      // Not a moment past exp, even where the verifier allows clock skew:
      // then the token verifies afresh.
      if (now < it->second.expires_at) return it->second;
      verified_.erase(it);
    }
  }
  absl::StatusOr<AccessClaims> claims = inner_->Verify(token, now);
  if (claims.ok() && now < claims->expires_at) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (verified_.size() >= capacity_) verified_.clear();
    verified_.emplace(key, *claims);
  }
  return claims;
}

}  // namespace chat
