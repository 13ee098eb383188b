#ifndef CHAT_COMMON_SERVICE_FLAGS_H_
#define CHAT_COMMON_SERVICE_FLAGS_H_

// Flags every service binary shares, each with an environment fallback
// (flag > environment > default). Each main defines its own --grpc_listen,
// since the default port differs.

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/time/time.h"
#include "common/db.h"
#include "common/db_reader.h"

ABSL_DECLARE_FLAG(int, db_pool_size);
ABSL_DECLARE_FLAG(int, db_read_connections);
ABSL_DECLARE_FLAG(int, db_read_threads);
ABSL_DECLARE_FLAG(absl::Duration, db_statement_timeout);
ABSL_DECLARE_FLAG(absl::Duration, db_idle_in_transaction_timeout);
ABSL_DECLARE_FLAG(int, max_threads);
ABSL_DECLARE_FLAG(absl::Duration, drain_timeout);
ABSL_DECLARE_FLAG(std::string, token_issuer);
ABSL_DECLARE_FLAG(std::string, token_audience);
ABSL_DECLARE_FLAG(std::string, auth_addr);
ABSL_DECLARE_FLAG(std::string, external_issuer);
ABSL_DECLARE_FLAG(std::string, external_audience);
ABSL_DECLARE_FLAG(std::string, external_public_key_file);

namespace chat {

// The database pool as the shared flags configure it.
DbPool::Options DbPoolOptionsFromFlags(
    std::string url, std::vector<PreparedStatement> statements);

// The reader of the hot reads (common/db_reader.h) as the flags configure it.
DbReader::Options DbReaderOptionsFromFlags(
    std::string url, std::vector<PreparedStatement> statements);

}  // namespace chat

#endif  // CHAT_COMMON_SERVICE_FLAGS_H_
