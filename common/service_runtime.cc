#include "common/service_runtime.h"

#include "absl/flags/flag.h"
#include "common/config.h"
#include "common/server.h"
#include "common/service_flags.h"

namespace chat {

absl::StatusOr<std::unique_ptr<ServiceRuntime>> ServiceRuntime::FromFlags(
    std::vector<PreparedStatement> statements, Needs needs) {
  absl::StatusOr<std::string> database_url = ReadSecret("DATABASE_URL");
  if (!database_url.ok()) return database_url.status();
  std::unique_ptr<ServiceRuntime> runtime(new ServiceRuntime());
  runtime->database_url_ = *database_url;
  if (needs.callers) {
    absl::StatusOr<TokenVerification> tokens = TokenVerification::FromFlags();
    if (!tokens.ok()) return tokens.status();
    runtime->tokens_ = std::make_unique<TokenVerification>(*std::move(tokens));
    statements =
        WithStatements(std::move(statements), ExternalUsers::Statements());
  }
  runtime->pool_ = DbPool::Create(
      DbPoolOptionsFromFlags(*std::move(database_url), std::move(statements)));
  if (needs.callers) {
    if (runtime->tokens_->external != nullptr) {
      runtime->external_users_ =
          std::make_unique<ExternalUsers>(runtime->pool_.get());
    }
    runtime->callers_ = std::make_unique<CallerResolver>(
        runtime->tokens_->verifier.get(), runtime->external_users_.get(),
        &runtime->clock_);
  }
  return runtime;
}

absl::Status ServiceRuntime::Serve(const std::string& name,
                                   const std::string& listen_address,
                                   int max_threads,
                                   const std::vector<grpc::Service*>& services,
                                   std::function<void()> on_stop) {
  DbPool* pool = pool_.get();
  return chat::Serve(
      {
          .name = name,
          .listen_address = listen_address,
          .max_threads = max_threads,
          .drain_timeout = absl::GetFlag(FLAGS_drain_timeout),
          .readiness_probe = [pool] { return pool->Ping(); },
          .on_stop = std::move(on_stop),
      },
      services);
}

}  // namespace chat
