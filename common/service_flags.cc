#include "common/service_flags.h"

#include "absl/flags/flag.h"
#include "common/config.h"

ABSL_FLAG(int, db_pool_size, chat::EnvOr("DB_POOL_SIZE", 8),
          "database connections (env DB_POOL_SIZE)");
ABSL_FLAG(int, db_read_connections, chat::EnvOr("DB_READ_CONNECTIONS", 4),
          "database connections of the hot reads (the listings), each "
          "carrying many calls' reads at once; taken in addition to "
          "DB_POOL_SIZE (env DB_READ_CONNECTIONS)");
ABSL_FLAG(int, db_read_threads, chat::EnvOr("DB_READ_THREADS", 1),
          "threads that share DB_READ_CONNECTIONS and read the rows of their "
          "answers (env DB_READ_THREADS)");
ABSL_FLAG(absl::Duration, db_statement_timeout,
          chat::EnvOr("DB_STATEMENT_TIMEOUT", absl::Seconds(30)),
          "PostgreSQL cancels a statement that runs longer; 0 keeps the "
          "role's setting (env DB_STATEMENT_TIMEOUT)");
ABSL_FLAG(absl::Duration, db_idle_in_transaction_timeout,
          chat::EnvOr("DB_IDLE_IN_TRANSACTION_TIMEOUT", absl::Seconds(60)),
          "PostgreSQL ends a session idle inside a transaction for longer; 0 "
          "keeps the role's setting (env DB_IDLE_IN_TRANSACTION_TIMEOUT)");
ABSL_FLAG(int, max_threads, chat::EnvOr("MAX_THREADS", 64),
          "gRPC worker threads at most (env MAX_THREADS)");
ABSL_FLAG(
    absl::Duration, drain_timeout,
    chat::EnvOr("DRAIN_TIMEOUT", absl::Seconds(30)),
    "how long calls under way may finish after SIGTERM (env DRAIN_TIMEOUT)");
ABSL_FLAG(std::string, token_issuer,
          chat::EnvOr("TOKEN_ISSUER", "chat-backend"),
          "iss of access tokens (env TOKEN_ISSUER)");
ABSL_FLAG(std::string, token_audience,
          chat::EnvOr("TOKEN_AUDIENCE", "chat-backend"),
          "aud of access tokens (env TOKEN_AUDIENCE)");
ABSL_FLAG(
    std::string, auth_addr, chat::EnvOr("AUTH_ADDR", "127.0.0.1:50051"),
    "the auth service, whose JWK Set verifies access tokens (env AUTH_ADDR)");
ABSL_FLAG(std::string, external_issuer, chat::EnvOr("EXTERNAL_JWT_ISSUER", ""),
          "iss of an external identity provider whose access tokens are also "
          "accepted, e.g. https://<project>.supabase.co/auth/v1; its key is "
          "the secret EXTERNAL_JWT_SECRET (HS256) or "
          "--external_public_key_file (env EXTERNAL_JWT_ISSUER)");
ABSL_FLAG(std::string, external_audience,
          chat::EnvOr("EXTERNAL_JWT_AUDIENCE", "authenticated"),
          "aud of the external provider's tokens (env EXTERNAL_JWT_AUDIENCE)");
ABSL_FLAG(std::string, external_public_key_file,
          chat::EnvOr("EXTERNAL_JWT_PUBLIC_KEY_FILE", ""),
          "PEM public key (RSA for RS256, Ed25519 for EdDSA) of the external "
          "provider (env EXTERNAL_JWT_PUBLIC_KEY_FILE)");

namespace chat {

DbPool::Options DbPoolOptionsFromFlags(
    std::string url, std::vector<PreparedStatement> statements) {
  return {
      .url = std::move(url),
      .size = absl::GetFlag(FLAGS_db_pool_size),
      .statement_timeout = absl::GetFlag(FLAGS_db_statement_timeout),
      .idle_in_transaction_timeout =
          absl::GetFlag(FLAGS_db_idle_in_transaction_timeout),
      .statements = std::move(statements),
  };
}

DbReader::Options DbReaderOptionsFromFlags(
    std::string url, std::vector<PreparedStatement> statements) {
  return {
      .url = std::move(url),
      .connections = absl::GetFlag(FLAGS_db_read_connections),
      .threads = absl::GetFlag(FLAGS_db_read_threads),
      .statement_timeout = absl::GetFlag(FLAGS_db_statement_timeout),
      .statements = std::move(statements),
  };
}

}  // namespace chat
