#ifndef CHAT_SERVICES_AUTH_AUTH_HANDLER_H_
#define CHAT_SERVICES_AUTH_AUTH_HANDLER_H_

// chat.v1.AuthService over gRPC: reads the request, calls Accounts, maps the
// result. No rules live here.

#include "chat/v1/auth.grpc.pb.h"
#include "common/clock.h"
#include "common/jwt.h"
#include "services/auth/accounts.h"

namespace chat::auth {

class AuthServiceImpl final : public chat::v1::AuthService::Service {
 public:
  // `published` holds every key the JWK Set lists (the signing key's public
  // half and any older keys still trusted during a rotation).
  AuthServiceImpl(Accounts* accounts, const JwtVerifier* verifier,
                  const StaticKeySet* published, const Clock* clock)
      : accounts_(accounts),
        verifier_(verifier),
        published_(published),
        clock_(clock) {}

  grpc::Status Register(grpc::ServerContext* context,
                        const chat::v1::RegisterRequest* request,
                        chat::v1::RegisterResponse* response) override;
  grpc::Status Login(grpc::ServerContext* context,
                     const chat::v1::LoginRequest* request,
                     chat::v1::LoginResponse* response) override;
  grpc::Status Refresh(grpc::ServerContext* context,
                       const chat::v1::RefreshRequest* request,
                       chat::v1::RefreshResponse* response) override;
  grpc::Status Logout(grpc::ServerContext* context,
                      const chat::v1::LogoutRequest* request,
                      google::protobuf::Empty* response) override;
  grpc::Status GetProfile(grpc::ServerContext* context,
                          const chat::v1::GetProfileRequest* request,
                          chat::v1::GetProfileResponse* response) override;
  grpc::Status UpdateProfile(
      grpc::ServerContext* context,
      const chat::v1::UpdateProfileRequest* request,
      chat::v1::UpdateProfileResponse* response) override;
  grpc::Status DeleteAccount(grpc::ServerContext* context,
                             const chat::v1::DeleteAccountRequest* request,
                             google::protobuf::Empty* response) override;
  grpc::Status GetJwks(grpc::ServerContext* context,
                       const chat::v1::GetJwksRequest* request,
                       chat::v1::GetJwksResponse* response) override;

 private:
  Accounts* accounts_;
  const JwtVerifier* verifier_;
  const StaticKeySet* published_;
  const Clock* clock_;
};

}  // namespace chat::auth

#endif  // CHAT_SERVICES_AUTH_AUTH_HANDLER_H_
