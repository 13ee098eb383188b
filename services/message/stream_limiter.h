#ifndef CHAT_SERVICES_MESSAGE_STREAM_LIMITER_H_
#define CHAT_SERVICES_MESSAGE_STREAM_LIMITER_H_

// A cap on the replies one user streams at once, per process.

#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace chat::message {

class StreamLimiter {
 public:
  explicit StreamLimiter(int max_per_user) : max_per_user_(max_per_user) {}

  // Holds one of a user's stream slots until destroyed.
  class Lease {
   public:
    Lease(StreamLimiter* limiter, std::string user)
        : limiter_(limiter), user_(std::move(user)) {}
    Lease(Lease&& other) noexcept
        : limiter_(other.limiter_), user_(std::move(other.user_)) {
      other.limiter_ = nullptr;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (limiter_ != nullptr) limiter_->Release(user_);
    }

   private:
    StreamLimiter* limiter_;
    std::string user_;
  };

  // A lease, or nullopt when the user already streams max_per_user replies.
  std::optional<Lease> TryAcquire(const std::string& user);

 private:
  void Release(const std::string& user);

  const int max_per_user_;
  std::mutex mutex_;
  std::map<std::string, int> active_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_STREAM_LIMITER_H_
