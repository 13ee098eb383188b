#ifndef CHAT_COMMON_JWKS_CLIENT_H_
#define CHAT_COMMON_JWKS_CLIENT_H_

// The verification keys of the auth service, fetched over gRPC
// (AuthService.GetJwks) and cached. An unknown kid triggers a refetch, at
// most once per `min_refetch_interval`, so a key rotation is picked up
// without a restart and a flood of forged kids cannot flood the auth
// service.

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/time/time.h"
#include "chat/v1/auth.grpc.pb.h"
#include "common/jwt.h"
#include "grpcpp/channel.h"

namespace chat {

class JwksClient final : public KeyLookup {
 public:
  explicit JwksClient(std::shared_ptr<grpc::Channel> auth_channel,
                      absl::Duration min_refetch_interval = absl::Seconds(10));

  std::shared_ptr<const RsaPublicKey> Find(absl::string_view kid) override;

  // Fetches the key set now (or waits for the fetch under way); OK when the
  // auth service answered.
  absl::Status Refresh();

 private:
  // The fetch itself; `lock` is held on entry and on return, released
  // during the call. One at a time: callers that arrive meanwhile wait for
  // its result instead of calling the auth service again.
  absl::Status FetchLocked(std::unique_lock<std::mutex>& lock);
  using KeyMap =
      std::map<std::string, std::shared_ptr<const RsaPublicKey>, std::less<>>;
  // The auth service's key set; never throws.
  absl::StatusOr<KeyMap> FetchKeySet();

  std::unique_ptr<chat::v1::AuthService::Stub> stub_;
  absl::Duration min_refetch_interval_;
  std::mutex mutex_;
  KeyMap keys_;
  absl::Time last_fetch_ = absl::InfinitePast();
  bool fetching_ = false;
  absl::Status last_result_;
  std::condition_variable fetched_;
};

}  // namespace chat

#endif  // CHAT_COMMON_JWKS_CLIENT_H_
