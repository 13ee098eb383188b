// The conversation service: wires configuration, storage and the handler,
// then serves until SIGTERM.

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/config.h"
#include "common/log.h"
#include "common/server.h"
#include "common/service_flags.h"
#include "common/service_runtime.h"
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

  absl::StatusOr<std::unique_ptr<chat::ServiceRuntime>> runtime =
      chat::ServiceRuntime::FromFlags(
          chat::conversation::ConversationStorage::Statements(),
          {.callers = true});
  if (!runtime.ok())
    return chat::log::Failure("cannot start", runtime.status());
  // Listings read on connections of their own, many calls' reads at once on
  // each, without a thread each (common/db_reader.h).
  std::unique_ptr<chat::DbReader> reader =
      chat::DbReader::Create(chat::DbReaderOptionsFromFlags(
          (*runtime)->database_url(),
          chat::conversation::ConversationStorage::Statements()));
  chat::conversation::ConversationStorage storage((*runtime)->pool(),
                                                  reader.get());
  chat::conversation::Conversations conversations(&storage,
                                                  (*runtime)->clock());
  chat::conversation::ConversationServiceImpl service(&conversations,
                                                      (*runtime)->callers());
  absl::Status served =
      (*runtime)->Serve("conversation", absl::GetFlag(FLAGS_grpc_listen),
                        absl::GetFlag(FLAGS_max_threads), {&service});
  if (!served.ok()) return chat::log::Failure("server failed", served);
  return EXIT_SUCCESS;
}
