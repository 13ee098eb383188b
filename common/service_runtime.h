#ifndef CHAT_COMMON_SERVICE_RUNTIME_H_
#define CHAT_COMMON_SERVICE_RUNTIME_H_

// The wiring every service main shares: the database pool (DATABASE_URL or
// DATABASE_URL_FILE, sized by the shared flags), and for the services that
// act for a caller the token verification and the caller resolver; then the
// server, ready while the database answers.
//
//   absl::StatusOr<std::unique_ptr<ServiceRuntime>> runtime =
//       ServiceRuntime::FromFlags(Storage::Statements(), {.callers = true});
//   ...
//   return runtime->Serve("conversation", listen, max_threads, {&service});

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/caller.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/external_users.h"
#include "grpcpp/impl/codegen/service_type.h"

namespace chat {

class ServiceRuntime {
 public:
  struct Needs {
    // Token verification and the caller resolver (with the external
    // issuer's users, when one is configured).
    bool callers = false;
  };

  // The pool prepares `statements` (plus the external users' when callers
  // are needed).
  static absl::StatusOr<std::unique_ptr<ServiceRuntime>> FromFlags(
      std::vector<PreparedStatement> statements, Needs needs);

  DbPool* pool() const { return pool_.get(); }
  const Clock* clock() const { return &clock_; }
  // Null unless Needs::callers.
  const CallerResolver* callers() const { return callers_.get(); }

  // The database URL the pool connects to (a secret: never log it).
  const std::string& database_url() const { return database_url_; }

  // Serves until SIGTERM (common/server.h), with the shared drain timeout;
  // `on_stop` runs when the signal arrives, before the drain.
  absl::Status Serve(const std::string& name, const std::string& listen_address,
                     int max_threads,
                     const std::vector<grpc::Service*>& services,
                     std::function<void()> on_stop = {});

 private:
  ServiceRuntime() = default;

  SystemClock clock_;
  std::string database_url_;
  std::unique_ptr<DbPool> pool_;
  std::unique_ptr<TokenVerification> tokens_;
  std::unique_ptr<ExternalUsers> external_users_;
  std::unique_ptr<CallerResolver> callers_;
};

}  // namespace chat

#endif  // CHAT_COMMON_SERVICE_RUNTIME_H_
