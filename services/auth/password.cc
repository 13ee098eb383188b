#include "services/auth/password.h"

#include <cstdio>
#include <vector>

#include "absl/status/status.h"
#include "argon2.h"
#include "openssl/rand.h"

namespace chat::auth {
namespace {

constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;

}  // namespace

absl::StatusOr<std::string> PasswordHasher::Hash(
    absl::string_view password) const {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof(salt)) != 1) {
    return absl::InternalError("no randomness for a salt");
  }
  const size_t length =
      argon2_encodedlen(params_.iterations, params_.memory_kib,
                        params_.parallelism, kSaltBytes, kHashBytes, Argon2_id);
  std::vector<char> encoded(length);
  const int rc = argon2id_hash_encoded(
      params_.iterations, params_.memory_kib, params_.parallelism,
      password.data(), password.size(), salt, sizeof(salt), kHashBytes,
      encoded.data(), encoded.size());
  if (rc != ARGON2_OK) return absl::InternalError(argon2_error_message(rc));
  return std::string(encoded.data());
}

bool PasswordHasher::Verify(absl::string_view password,
                            const std::string& phc) const {
  return argon2id_verify(phc.c_str(), password.data(), password.size()) ==
         ARGON2_OK;
}

bool PasswordHasher::NeedsRehash(const std::string& phc) const {
  unsigned version = 0, memory = 0, iterations = 0, parallelism = 0;
  if (std::sscanf(phc.c_str(), "$argon2id$v=%u$m=%u,t=%u,p=%u$", &version,
                  &memory, &iterations, &parallelism) != 4) {
    return true;
  }
  return version < ARGON2_VERSION_NUMBER || memory < params_.memory_kib ||
         iterations < params_.iterations || parallelism < params_.parallelism;
}

}  // namespace chat::auth
