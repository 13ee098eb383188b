// The conversation service: wires configuration, storage and the handler,
// then serves until SIGTERM.

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/config.h"
#include "common/db.h"
#include "common/jwks_client.h"
#include "common/log.h"
#include "common/server.h"
#include "common/service_flags.h"
#include "grpcpp/create_channel.h"
#include "services/conversation/conversation_handler.h"
#include "services/conversation/conversation_storage.h"
#include "services/conversation/conversations.h"

ABSL_FLAG(std::string, grpc_listen,
          chat::EnvOr("GRPC_LISTEN", "127.0.0.1:50052"),
          "host:port to serve gRPC on (env GRPC_LISTEN)");

int main(int argc, char** argv) {
  chat::BlockTerminationSignals();
  absl::SetProgramUsageMessage(
      "chat-conversation: the caller's conversations. The database URL comes "
      "from the environment: DATABASE_URL (or DATABASE_URL_FILE).");
  absl::ParseCommandLine(argc, argv);
  chat::log::SetServiceName("conversation");

  absl::StatusOr<std::string> database_url = chat::ReadSecret("DATABASE_URL");
  if (!database_url.ok()) {
    chat::log::Error("no database",
                     {{"error", database_url.status().message()}});
    return EXIT_FAILURE;
  }
  std::unique_ptr<chat::DbPool> pool = chat::DbPool::Create({
      .url = *database_url,
      .size = absl::GetFlag(FLAGS_db_pool_size),
      .statements = chat::conversation::ConversationStorage::Statements(),
  });
  chat::JwksClient jwks(grpc::CreateChannel(
      absl::GetFlag(FLAGS_auth_addr), grpc::InsecureChannelCredentials()));
  chat::JwtVerifier verifier(&jwks,
                             {.issuer = absl::GetFlag(FLAGS_token_issuer),
                              .audience = absl::GetFlag(FLAGS_token_audience)});
  chat::SystemClock clock;
  chat::conversation::ConversationStorage storage(pool.get());
  chat::conversation::Conversations conversations(&storage, &clock);
  chat::conversation::ConversationServiceImpl service(&conversations, &verifier,
                                                      &clock);

  absl::Status served = chat::Serve(
      {
          .name = "conversation",
          .listen_address = absl::GetFlag(FLAGS_grpc_listen),
          .max_threads = absl::GetFlag(FLAGS_max_threads),
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
