// The message service: wires configuration, storage, the model provider and
// the handler, then serves until SIGTERM.

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "common/log.h"
#include "common/server.h"
#include "common/service_flags.h"
#include "common/service_runtime.h"
#include "common/thread_pool.h"
#include "services/message/chat.h"
#include "services/message/echo_provider.h"
#include "services/message/event_streams_handler.h"
#include "services/message/message_handler.h"
#include "services/message/message_storage.h"
#include "services/message/messages.h"
#include "services/message/openai_provider.h"
#include "services/message/search.h"
#include "services/message/search_handler.h"
#include "services/message/search_storage.h"
#include "services/message/share_handler.h"
#include "services/message/share_storage.h"
#include "services/message/shares.h"
#include "services/message/transfer_handler.h"
#include "services/message/transfer_storage.h"
#include "services/message/transfers.h"

ABSL_FLAG(std::string, grpc_listen,
          chat::EnvOr("GRPC_LISTEN", "127.0.0.1:50053"),
          "host:port to serve gRPC on (env GRPC_LISTEN)");
ABSL_FLAG(int, reply_workers, chat::EnvOr("REPLY_WORKERS", 8),
          "threads that start and end replies (their database work); no "
          "reply holds one while it streams (env REPLY_WORKERS)");
ABSL_FLAG(std::string, provider, chat::EnvOr("PROVIDER", "echo"),
          "the model provider: echo (offline) or openai (env PROVIDER)");
ABSL_FLAG(std::string, provider_base_url,
          chat::EnvOr("PROVIDER_BASE_URL", "https://api.openai.com/v1"),
          "base URL of an OpenAI-compatible API (env PROVIDER_BASE_URL)");
ABSL_FLAG(std::string, provider_model,
          chat::EnvOr("PROVIDER_MODEL", "gpt-4o-mini"),
          "the model asked when a request names none (env PROVIDER_MODEL)");
ABSL_FLAG(absl::Duration, provider_connect_timeout,
          chat::EnvOr("PROVIDER_CONNECT_TIMEOUT", absl::Seconds(10)),
          "(env PROVIDER_CONNECT_TIMEOUT)");
ABSL_FLAG(absl::Duration, provider_timeout,
          chat::EnvOr("PROVIDER_TIMEOUT", absl::Minutes(5)),
          "the whole reply must arrive within this (env PROVIDER_TIMEOUT)");
ABSL_FLAG(absl::Duration, provider_idle_timeout,
          chat::EnvOr("PROVIDER_IDLE_TIMEOUT", absl::Seconds(60)),
          "longest silence within a reply (env PROVIDER_IDLE_TIMEOUT)");
ABSL_FLAG(std::string, provider_http_version,
          chat::EnvOr("PROVIDER_HTTP_VERSION", "auto"),
          "auto (HTTP/2 over https when the provider offers it, else "
          "HTTP/1.1) or 1.1 (env PROVIDER_HTTP_VERSION)");
ABSL_FLAG(std::string, provider_ca_file, chat::EnvOr("PROVIDER_CA_FILE", ""),
          "PEM certificates to trust for an https provider instead of the "
          "system's (a private CA); verification is never off "
          "(env PROVIDER_CA_FILE)");
ABSL_FLAG(int, provider_max_connections,
          chat::EnvOr("PROVIDER_MAX_CONNECTIONS", 100),
          "HTTP/2 connections to the provider at most, each carrying many "
          "replies (env PROVIDER_MAX_CONNECTIONS)");
ABSL_FLAG(std::string, system_prompt, chat::EnvOr("SYSTEM_PROMPT", ""),
          "sent first in every context when set (env SYSTEM_PROMPT)");
ABSL_FLAG(int, context_budget_chars, chat::EnvOr("CONTEXT_BUDGET_CHARS", 24000),
          "characters of earlier messages sent as context, newest first "
          "(env CONTEXT_BUDGET_CHARS)");
ABSL_FLAG(int, max_streams_per_user, chat::EnvOr("MAX_STREAMS_PER_USER", 4),
          "replies one user may stream at once; more answer 429 "
          "(env MAX_STREAMS_PER_USER)");
ABSL_FLAG(std::string, provider_models, chat::EnvOr("PROVIDER_MODELS", ""),
          "comma-separated models a request may name besides the default "
          "(env PROVIDER_MODELS)");
ABSL_FLAG(absl::Duration, reply_recovery_interval,
          chat::EnvOr("REPLY_RECOVERY_INTERVAL", absl::Seconds(30)),
          "how often replies left in progress by a gone replica are marked "
          "incomplete (env REPLY_RECOVERY_INTERVAL)");
ABSL_FLAG(absl::Duration, reply_recovery_grace,
          chat::EnvOr("REPLY_RECOVERY_GRACE", absl::Seconds(10)),
          "a reply of a gone replica is recovered once it was not stored for "
          "this long (env REPLY_RECOVERY_GRACE)");

ABSL_FLAG(int, max_transfers_per_user, chat::EnvOr("MAX_TRANSFERS_PER_USER", 2),
          "exports and imports one user may run at once, across replicas; "
          "more answer 429 (env MAX_TRANSFERS_PER_USER)");
ABSL_FLAG(int, max_transfers, chat::EnvOr("MAX_TRANSFERS", 2),
          "exports and imports this process runs at once, each holding a "
          "database connection; more answer 429 (env MAX_TRANSFERS)");

// Share links (issue 12).
ABSL_FLAG(std::string, public_base_url, chat::EnvOr("PUBLIC_BASE_URL", ""),
          "where clients reach the REST API, put before /v1/shares/<token> "
          "in a share's url; empty: the path alone (env PUBLIC_BASE_URL)");

int main(int argc, char** argv) {
  chat::BlockTerminationSignals();
  absl::SetProgramUsageMessage(
      "chat-message: messages and streamed assistant replies. Secrets come "
      "from the environment: DATABASE_URL (or DATABASE_URL_FILE) and, for "
      "--provider=openai, PROVIDER_API_KEY (or PROVIDER_API_KEY_FILE).");
  absl::ParseCommandLine(argc, argv);
  chat::log::SetServiceName("message");
  curl_global_init(CURL_GLOBAL_DEFAULT);

  std::unique_ptr<chat::message::Provider> provider;
  const std::string provider_name = absl::GetFlag(FLAGS_provider);
  if (provider_name == "echo") {
    provider = std::make_unique<chat::message::EchoProvider>();
  } else if (provider_name == "openai") {
    absl::StatusOr<chat::message::ProviderHttp> http =
        chat::message::ParseProviderHttp(
            absl::GetFlag(FLAGS_provider_http_version));
    if (!http.ok())
      return chat::log::Failure("bad --provider_http_version", http.status());
    absl::StatusOr<std::unique_ptr<chat::message::OpenAiProvider>> openai =
        chat::message::OpenAiProvider::Create(chat::message::OpenAiOptions{
            .base_url = absl::GetFlag(FLAGS_provider_base_url),
            .api_key = chat::ReadSecret("PROVIDER_API_KEY").value_or(""),
            .model = absl::GetFlag(FLAGS_provider_model),
            .connect_timeout = absl::GetFlag(FLAGS_provider_connect_timeout),
            .total_timeout = absl::GetFlag(FLAGS_provider_timeout),
            .idle_timeout = absl::GetFlag(FLAGS_provider_idle_timeout),
            .http = *http,
            .ca_file = absl::GetFlag(FLAGS_provider_ca_file),
            .max_connections = absl::GetFlag(FLAGS_provider_max_connections),
        });
    if (!openai.ok())
      return chat::log::Failure("cannot start the provider", openai.status());
    provider = *std::move(openai);
  } else {
    return chat::log::Failure("bad --provider",
                              absl::InvalidArgumentError("use echo or openai"));
  }
  if (absl::Status base = chat::message::CheckPublicBaseUrl(
          absl::GetFlag(FLAGS_public_base_url));
      !base.ok()) {
    return chat::log::Failure("bad --public_base_url", base);
  }
  chat::log::Info("model provider", {{"provider", provider_name},
                                     {"model", provider->default_model()}});

  absl::StatusOr<std::unique_ptr<chat::ServiceRuntime>> runtime =
      chat::ServiceRuntime::FromFlags(
          chat::WithStatements(
              chat::WithStatements(
                  chat::WithStatements(
                      chat::message::MessageStorage::Statements(),
                      chat::message::TransferStorage::Statements()),
                  chat::message::ShareStorage::Statements()),
              chat::message::SearchStorage::Statements()),
          {.callers = true});
  if (!runtime.ok())
    return chat::log::Failure("cannot start", runtime.status());
  // Replies are owned through a lock PostgreSQL holds for this process
  // (services/message/message_storage.h, ReplyOwnership).
  absl::StatusOr<std::unique_ptr<chat::message::ReplyOwnership>> ownership =
      chat::message::ReplyOwnership::Acquire((*runtime)->database_url());
  if (!ownership.ok())
    return chat::log::Failure("cannot own replies", ownership.status());
  // Listings read on connections of their own, many calls' reads at once on
  // each, without a thread each (common/db_reader.h).
  std::unique_ptr<chat::DbReader> reader =
      chat::DbReader::Create(chat::DbReaderOptionsFromFlags(
          (*runtime)->database_url(),
          chat::message::MessageStorage::Statements()));
  chat::message::MessageStorage storage((*runtime)->pool(), reader.get());
  chat::message::Messages messages(&storage, (*runtime)->clock());
  chat::message::Chats chats(
      &storage, provider.get(), (*runtime)->clock(),
      {.system_prompt = absl::GetFlag(FLAGS_system_prompt),
       .context_budget_chars =
           static_cast<size_t>(absl::GetFlag(FLAGS_context_budget_chars)),
       .max_streams_per_user = absl::GetFlag(FLAGS_max_streams_per_user),
       .allowed_models = absl::StrSplit(absl::GetFlag(FLAGS_provider_models),
                                        ',', absl::SkipWhitespace()),
       .owner = (*ownership)->key(),
       .finish_threads = absl::GetFlag(FLAGS_reply_workers),
       .sign_of_life =
           std::min(absl::Milliseconds(2500),
                    absl::GetFlag(FLAGS_reply_recovery_grace) / 4)});
  // Every reply in progress here, stored (and checked) twice a second;
  // StreamReply clients of other replicas' replies, fed from the store.
  chat::PeriodicThread saver(std::chrono::milliseconds(500),
                             [&] { chats.SaveReplies(); });
  chat::PeriodicThread follower(std::chrono::milliseconds(200),
                                [&] { chats.FollowReplies(); });
  chat::message::ReplyRecovery recovery(
      ownership->get(), (*runtime)->pool(), (*runtime)->clock(),
      absl::GetFlag(FLAGS_reply_recovery_interval),
      absl::GetFlag(FLAGS_reply_recovery_grace));
  // Reset once the server has stopped, before the handlers whose tasks it
  // runs are destroyed.
  auto work =
      std::make_unique<chat::ThreadPool>(absl::GetFlag(FLAGS_reply_workers));
  chat::message::TransferStorage transfer_storage((*runtime)->pool());
  chat::message::TransferSlots transfer_slots(
      std::max(1, absl::GetFlag(FLAGS_max_transfers)));
  chat::message::Transfers transfers(
      &transfer_storage, &transfer_slots, (*runtime)->clock(),
      {.per_user = std::max(1, absl::GetFlag(FLAGS_max_transfers_per_user))});
  chat::message::ExportServiceImpl export_service(&transfers,
                                                  (*runtime)->callers());
  // Share links.
  chat::message::ShareStorage share_storage((*runtime)->pool());
  chat::message::Shares shares(
      &share_storage, (*runtime)->clock(),
      {.public_base_url = absl::GetFlag(FLAGS_public_base_url)});
  chat::message::ShareServiceImpl share_service(&shares, (*runtime)->callers());
  chat::message::MessageServiceImpl service(&messages, &chats,
                                            (*runtime)->callers(), work.get());
  // The gateway's event streams, many on one call.
  chat::message::EventStreamsImpl event_streams(&chats, (*runtime)->callers(),
                                                work.get());
  // Search (docs/api.md "Search").
  chat::message::SearchStorage search_storage((*runtime)->pool());
  chat::message::Search search(&search_storage);
  chat::message::SearchServiceImpl search_service(&search,
                                                  (*runtime)->callers());
  absl::Status served =
      (*runtime)->Serve("message", absl::GetFlag(FLAGS_grpc_listen),
                        absl::GetFlag(FLAGS_max_threads),
                        {&service, &event_streams, &export_service,
                         &share_service, &search_service},
                        [&] {
                          chats.Stop();
                          event_streams.Drain();
                        });
  work.reset();
  curl_global_cleanup();
  if (!served.ok()) return chat::log::Failure("server failed", served);
  return EXIT_SUCCESS;
}
