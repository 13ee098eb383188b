#ifndef CHAT_COMMON_JWKS_CLIENT_H_
#define CHAT_COMMON_JWKS_CLIENT_H_

// The verification keys of the auth service, fetched over gRPC
// (AuthService.GetJwks) and cached. An unknown kid triggers a refetch, at
// most once per `min_refetch_interval`, so a key rotation is picked up
// without a restart and a flood of forged kids cannot flood the auth
// service.

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

  // Fetches the key set now; OK when the auth service answered.
  absl::Status Refresh();

 private:
  std::unique_ptr<chat::v1::AuthService::Stub> stub_;
  absl::Duration min_refetch_interval_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const RsaPublicKey>, std::less<>> keys_;
  absl::Time last_fetch_ = absl::InfinitePast();
};

}  // namespace chat

#endif  // CHAT_COMMON_JWKS_CLIENT_H_
