#include "services/message/stream_limiter.h"

namespace chat::message {

std::optional<StreamLimiter::Lease> StreamLimiter::TryAcquire(
    const std::string& user) {
  std::lock_guard<std::mutex> lock(mutex_);
  int& active = active_[user];
  if (active >= max_per_user_) return std::nullopt;
  ++active;
  return std::optional<Lease>(std::in_place, this, user);
}

void StreamLimiter::Release(const std::string& user) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = active_.find(user); it != active_.end() && --it->second <= 0) {
    active_.erase(it);
  }
}

}  // namespace chat::message
