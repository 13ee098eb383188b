#include "services/auth/auth_handler.h"

#include "common/grpc_status.h"
#include "common/proto_time.h"
#include "common/request_context.h"

namespace chat::auth {
namespace {

using grpc::Status;

void ToProto(const UserRecord& user, chat::v1::User* out) {
  out->set_id(user.id);
  out->set_username(user.username);
  out->set_email(user.email);
  SetTimestamp(user.created_at, out->mutable_created_at());
  SetTimestamp(user.updated_at, out->mutable_updated_at());
}

void ToProto(const IssuedTokens& tokens, chat::v1::Tokens* out) {
  out->set_access_token(tokens.access_token);
  out->set_refresh_token(tokens.refresh_token);
  out->set_token_type("Bearer");
  out->set_expires_in(absl::ToInt64Seconds(tokens.expires_in));
}

}  // namespace

Status AuthServiceImpl::Register(grpc::ServerContext* context,
                                 const chat::v1::RegisterRequest* request,
                                 chat::v1::RegisterResponse* response) {
  absl::StatusOr<Session> session = accounts_->Register(
      {request->username(), request->email(), request->password()});
  if (!session.ok()) return ToGrpcStatus(session.status());
  ToProto(session->user, response->mutable_user());
  ToProto(session->tokens, response->mutable_tokens());
  return Status::OK;
}

Status AuthServiceImpl::Login(grpc::ServerContext* context,
                              const chat::v1::LoginRequest* request,
                              chat::v1::LoginResponse* response) {
  absl::StatusOr<Session> session =
      accounts_->Login(request->login(), request->password());
  if (!session.ok()) return ToGrpcStatus(session.status());
  ToProto(session->user, response->mutable_user());
  ToProto(session->tokens, response->mutable_tokens());
  return Status::OK;
}

Status AuthServiceImpl::Refresh(grpc::ServerContext* context,
                                const chat::v1::RefreshRequest* request,
                                chat::v1::RefreshResponse* response) {
  absl::StatusOr<IssuedTokens> tokens =
      accounts_->Refresh(request->refresh_token());
  if (!tokens.ok()) return ToGrpcStatus(tokens.status());
  ToProto(*tokens, response->mutable_tokens());
  return Status::OK;
}

Status AuthServiceImpl::Logout(grpc::ServerContext* context,
                               const chat::v1::LogoutRequest* request,
                               google::protobuf::Empty* response) {
  return ToGrpcStatus(accounts_->Logout(request->refresh_token()));
}

Status AuthServiceImpl::GetProfile(grpc::ServerContext* context,
                                   const chat::v1::GetProfileRequest* request,
                                   chat::v1::GetProfileResponse* response) {
  absl::StatusOr<AccessClaims> caller =
      Authenticate(*context, *verifier_, clock_->Now());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<UserRecord> user = accounts_->GetProfile(*caller);
  if (!user.ok()) return ToGrpcStatus(user.status());
  ToProto(*user, response->mutable_user());
  return Status::OK;
}

Status AuthServiceImpl::UpdateProfile(
    grpc::ServerContext* context, const chat::v1::UpdateProfileRequest* request,
    chat::v1::UpdateProfileResponse* response) {
  absl::StatusOr<AccessClaims> caller =
      Authenticate(*context, *verifier_, clock_->Now());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  ProfileUpdate update{.current_password = request->current_password()};
  if (request->has_username()) update.username = request->username();
  if (request->has_email()) update.email = request->email();
  if (request->has_new_password())
    update.new_password = request->new_password();
  absl::StatusOr<UserRecord> user = accounts_->UpdateProfile(*caller, update);
  if (!user.ok()) return ToGrpcStatus(user.status());
  ToProto(*user, response->mutable_user());
  return Status::OK;
}

Status AuthServiceImpl::DeleteAccount(
    grpc::ServerContext* context, const chat::v1::DeleteAccountRequest* request,
    google::protobuf::Empty* response) {
  absl::StatusOr<AccessClaims> caller =
      Authenticate(*context, *verifier_, clock_->Now());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return ToGrpcStatus(
      accounts_->DeleteAccount(*caller, request->current_password()));
}

Status AuthServiceImpl::GetJwks(grpc::ServerContext* context,
                                const chat::v1::GetJwksRequest* request,
                                chat::v1::GetJwksResponse* response) {
  for (const Jwk& jwk : published_->Jwks()) {
    chat::v1::Jwk* key = response->add_keys();
    key->set_kty("RSA");
    key->set_kid(jwk.kid);
    key->set_use("sig");
    key->set_alg("RS256");
    key->set_n(jwk.n);
    key->set_e(jwk.e);
  }
  return Status::OK;
}

}  // namespace chat::auth
