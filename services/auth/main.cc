// The auth service: wires configuration, storage and the handler, then
// serves until SIGTERM.

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "common/jwt.h"
#include "common/log.h"
#include "common/server.h"
#include "common/service_flags.h"
#include "common/service_runtime.h"
#include "services/auth/accounts.h"
#include "services/auth/auth_handler.h"
#include "services/auth/auth_storage.h"
#include "services/auth/password.h"

ABSL_FLAG(std::string, grpc_listen,
          chat::EnvOr("GRPC_LISTEN", "127.0.0.1:50051"),
          "host:port to serve gRPC on (env GRPC_LISTEN)");
ABSL_FLAG(absl::Duration, access_token_ttl,
          chat::EnvOr("ACCESS_TOKEN_TTL", absl::Minutes(15)),
          "access token lifetime (env ACCESS_TOKEN_TTL)");
ABSL_FLAG(absl::Duration, refresh_token_ttl,
          chat::EnvOr("REFRESH_TOKEN_TTL", absl::Hours(24 * 30)),
          "refresh token lifetime (env REFRESH_TOKEN_TTL)");
ABSL_FLAG(absl::Duration, refresh_reuse_grace,
          chat::EnvOr("REFRESH_REUSE_GRACE", absl::Seconds(10)),
          "a retired refresh token replayed within this time is a concurrent "
          "refresh, not a theft (env REFRESH_REUSE_GRACE)");
ABSL_FLAG(std::string, trusted_public_key_files,
          chat::EnvOr("AUTH_TRUSTED_PUBLIC_KEY_FILES", ""),
          "comma-separated PEM public keys of earlier signing keys, still "
          "published in the JWK Set during a rotation "
          "(env AUTH_TRUSTED_PUBLIC_KEY_FILES)");

int main(int argc, char** argv) {
  chat::BlockTerminationSignals();
  absl::SetProgramUsageMessage(
      "chat-auth: accounts and tokens. Secrets come from the environment: "
      "DATABASE_URL (or DATABASE_URL_FILE) and AUTH_SIGNING_KEY (or "
      "AUTH_SIGNING_KEY_FILE, a PEM RSA private key of at least 2048 bits).");
  absl::ParseCommandLine(argc, argv);
  chat::log::SetServiceName("auth");

  absl::StatusOr<std::string> signing_key =
      chat::ReadSecret("AUTH_SIGNING_KEY");
  if (!signing_key.ok())
    return chat::log::Failure("no signing key", signing_key.status());
  absl::StatusOr<std::unique_ptr<chat::JwtSigner>> signer =
      chat::JwtSigner::FromPem(*signing_key);
  if (!signer.ok())
    return chat::log::Failure("bad signing key", signer.status());

  chat::StaticKeySet keys;
  keys.Add((*signer)->public_key());
  for (absl::string_view path :
       absl::StrSplit(absl::GetFlag(FLAGS_trusted_public_key_files), ',',
                      absl::SkipWhitespace())) {
    absl::StatusOr<std::string> pem = chat::ReadFile(std::string(path));
    if (!pem.ok())
      return chat::log::Failure("bad trusted key file", pem.status());
    absl::StatusOr<std::shared_ptr<const chat::RsaPublicKey>> key =
        chat::RsaPublicKey::FromPem(*pem);
    if (!key.ok()) return chat::log::Failure("bad trusted key", key.status());
    keys.Add(*key);
  }

  absl::StatusOr<std::unique_ptr<chat::ServiceRuntime>> runtime =
      chat::ServiceRuntime::FromFlags(chat::auth::AuthStorage::Statements(),
                                      {});
  if (!runtime.ok())
    return chat::log::Failure("cannot start", runtime.status());
  chat::auth::AuthStorage storage((*runtime)->pool());
  const chat::Clock* clock = (*runtime)->clock();
  chat::auth::PasswordHasher hasher;
  chat::auth::AccountsOptions options{
      .issuer = absl::GetFlag(FLAGS_token_issuer),
      .audience = absl::GetFlag(FLAGS_token_audience),
      .access_token_ttl = absl::GetFlag(FLAGS_access_token_ttl),
      .refresh_token_ttl = absl::GetFlag(FLAGS_refresh_token_ttl),
      .refresh_reuse_grace = absl::GetFlag(FLAGS_refresh_reuse_grace),
  };
  chat::JwtVerifier verifier(
      &keys, {.issuer = options.issuer, .audience = options.audience});
  chat::auth::Accounts accounts(&storage, signer->get(), &hasher, clock,
                                options);
  chat::auth::AuthServiceImpl service(&accounts, &verifier, &keys, clock);

  absl::Status served =
      (*runtime)->Serve("auth", absl::GetFlag(FLAGS_grpc_listen),
                        absl::GetFlag(FLAGS_max_threads), {&service});
  if (!served.ok()) return chat::log::Failure("server failed", served);
  return EXIT_SUCCESS;
}
