#include "common/service_flags.h"

#include "absl/flags/flag.h"
#include "common/config.h"

ABSL_FLAG(int, db_pool_size, chat::EnvOr("DB_POOL_SIZE", 8),
          "database connections (env DB_POOL_SIZE)");
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
