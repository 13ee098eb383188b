#include "common/jwks_client.h"

#include "common/grpc_status.h"
#include "common/log.h"
#include "grpcpp/client_context.h"

namespace chat {

JwksClient::JwksClient(std::shared_ptr<grpc::Channel> auth_channel,
                       absl::Duration min_refetch_interval)
    : stub_(chat::v1::AuthService::NewStub(std::move(auth_channel))),
      min_refetch_interval_(min_refetch_interval) {}

absl::Status JwksClient::Refresh() {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  chat::v1::GetJwksResponse response;
  grpc::Status status = stub_->GetJwks(&context, {}, &response);
  std::lock_guard<std::mutex> lock(mutex_);
  last_fetch_ = absl::Now();
  if (!status.ok()) {
    log::Warn("cannot fetch the JWK Set", {{"error", status.error_message()}});
    return FromGrpcStatus(status);
  }
  std::map<std::string, std::shared_ptr<const RsaPublicKey>, std::less<>> keys;
  for (const chat::v1::Jwk& jwk : response.keys()) {
    if (jwk.kty() != "RSA") continue;
    absl::StatusOr<std::shared_ptr<const RsaPublicKey>> key =
        RsaPublicKey::FromJwk({jwk.kid(), jwk.n(), jwk.e()});
    if (key.ok()) keys[jwk.kid()] = *std::move(key);
  }
  keys_ = std::move(keys);
  return absl::OkStatus();
}

std::shared_ptr<const RsaPublicKey> JwksClient::Find(absl::string_view kid) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = keys_.find(kid); it != keys_.end()) return it->second;
    if (absl::Now() - last_fetch_ < min_refetch_interval_) return nullptr;
  }
  if (!Refresh().ok()) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : it->second;
}

}  // namespace chat
