// The conversation service: wires configuration, storage and the handler,
// then serves until SIGTERM.

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/caller.h"
#include "common/config.h"
#include "common/db.h"
#include "common/log.h"
#include "common/server.h"
#include "common/service_flags.h"
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
    return chat::log::Failure("no database", database_url.status());
  }
  std::unique_ptr<chat::DbPool> pool =
      chat::DbPool::Create(chat::DbPoolOptionsFromFlags(
          *database_url,
          chat::WithStatements(
              chat::conversation::ConversationStorage::Statements(),
              chat::ExternalUsers::Statements())));
  absl::StatusOr<chat::TokenVerification> tokens =
      chat::TokenVerification::FromFlags();
  if (!tokens.ok()) {
    return chat::log::Failure("bad token configuration", tokens.status());
  }
  chat::ExternalUsers external_users(pool.get());
  chat::SystemClock clock;
  chat::conversation::ConversationStorage storage(pool.get());
  chat::conversation::Conversations conversations(&storage, &clock);
  chat::CallerResolver callers(tokens->verifier.get(),
                               tokens->external ? &external_users : nullptr,
                               &clock);
  chat::conversation::ConversationServiceImpl service(&conversations, &callers);

  absl::Status served = chat::Serve(
      {
          .name = "conversation",
          .listen_address = absl::GetFlag(FLAGS_grpc_listen),
          .max_threads = absl::GetFlag(FLAGS_max_threads),
          .drain_timeout = absl::GetFlag(FLAGS_drain_timeout),
          .readiness_probe = [&pool] { return pool->Ping(); },
      },
      {&service});
  if (!served.ok()) return chat::log::Failure("server failed", served);
  return EXIT_SUCCESS;
}
