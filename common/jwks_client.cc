#include "common/jwks_client.h"

#include "common/grpc_status.h"
#include "common/log.h"
#include "grpcpp/client_context.h"

namespace chat {

JwksClient::JwksClient(std::shared_ptr<grpc::Channel> auth_channel,
                       absl::Duration min_refetch_interval)
    : stub_(chat::v1::AuthService::NewStub(std::move(auth_channel))),
      min_refetch_interval_(min_refetch_interval) {}

absl::StatusOr<JwksClient::KeyMap> JwksClient::FetchKeySet() {
  // Nothing may escape: the waiters of FetchLocked depend on its end.
  try {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    chat::v1::GetJwksResponse response;
    grpc::Status status = stub_->GetJwks(&context, {}, &response);
    if (!status.ok()) {
      log::Warn("cannot fetch the JWK Set",
                {{"error", status.error_message()}});
      return FromGrpcStatus(status);
    }
    KeyMap keys;
    for (const chat::v1::Jwk& jwk : response.keys()) {
      if (jwk.kty() != "RSA") continue;
      absl::StatusOr<std::shared_ptr<const RsaPublicKey>> key =
          RsaPublicKey::FromJwk({jwk.kid(), jwk.n(), jwk.e()});
      if (key.ok()) keys[jwk.kid()] = *std::move(key);
    }
    return keys;
  } catch (const std::exception& e) {
    log::Error("cannot fetch the JWK Set", {{"error", e.what()}});
    return absl::InternalError("cannot fetch the JWK Set");
  }
}

absl::Status JwksClient::Refresh() {
  std::unique_lock<std::mutex> lock(mutex_);
  return FetchLocked(lock);
}

absl::Status JwksClient::FetchLocked(std::unique_lock<std::mutex>& lock) {
  if (fetching_) {
    fetched_.wait(lock, [this] { return !fetching_; });
    return last_result_;
  }
  fetching_ = true;
  last_fetch_ = absl::Now();  // claimed before the call: no second one
  lock.unlock();
  absl::StatusOr<KeyMap> fetched = FetchKeySet();
  lock.lock();
  if (fetched.ok()) keys_ = *std::move(fetched);
  last_result_ = fetched.status();
  fetching_ = false;
  fetched_.notify_all();
  return last_result_;
}

std::shared_ptr<const RsaPublicKey> JwksClient::Find(absl::string_view kid) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (auto it = keys_.find(kid); it != keys_.end()) return it->second;
  if (!fetching_ && absl::Now() - last_fetch_ < min_refetch_interval_) {
    return nullptr;
  }
  if (!FetchLocked(lock).ok()) return nullptr;
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : it->second;
}

}  // namespace chat
