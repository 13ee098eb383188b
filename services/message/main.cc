// The message service. Until its issue lands, every RPC of the contract
// answers UNIMPLEMENTED (the generated base class does); the server already
// has health, reflection, the database probe and the graceful stop.

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "chat/v1/message.grpc.pb.h"
#include "common/config.h"
#include "common/db.h"
#include "common/log.h"
#include "common/server.h"

ABSL_FLAG(std::string, grpc_listen, chat::EnvOr("GRPC_LISTEN", "127.0.0.1:50053"),
          "host:port to serve gRPC on (env GRPC_LISTEN)");
ABSL_FLAG(int, db_pool_size, chat::EnvOr("DB_POOL_SIZE", 8),
          "database connections (env DB_POOL_SIZE)");
ABSL_FLAG(absl::Duration, drain_timeout,
          chat::EnvOr("DRAIN_TIMEOUT", absl::Seconds(30)),
          "how long calls under way may finish after SIGTERM (env DRAIN_TIMEOUT)");

int main(int argc, char** argv) {
  chat::BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  chat::log::SetServiceName("message");
  absl::StatusOr<std::string> database_url = chat::ReadSecret("DATABASE_URL");
  if (!database_url.ok()) {
    chat::log::Error("no database", {{"error", database_url.status().message()}});
    return EXIT_FAILURE;
  }
  std::unique_ptr<chat::DbPool> pool = chat::DbPool::Create(
      {.url = *database_url, .size = absl::GetFlag(FLAGS_db_pool_size)});
  chat::v1::MessageService::Service service;
  absl::Status served = chat::Serve(
      {
          .name = "message",
          .listen_address = absl::GetFlag(FLAGS_grpc_listen),
          .drain_timeout = absl::GetFlag(FLAGS_drain_timeout),
          .readiness_probe = [&pool] { return pool->Ping(); },
      },
      {&service});
  if (!served.ok()) {
    chat::log::Error("server failed", {{"error", served.message()}});
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
