#ifndef CHAT_COMMON_TEST_KEYS_H_
#define CHAT_COMMON_TEST_KEYS_H_

// Keys for tests, made at run time: none is kept in the repository.

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "openssl/bio.h"
#include "openssl/evp.h"
#include "openssl/pem.h"
#include "openssl/rsa.h"

namespace chat::testing {

// A new RSA private key in PEM form.
inline std::string NewRsaPrivateKeyPem(int bits = 2048) {
  EVP_PKEY* key = EVP_RSA_gen(bits);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string pem(data, length);
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

// One RSA-2048 private key shared by the test processes of this machine's
// user: made by the first that asks (0.3 to 2 s here) and kept in the temp
// directory, so that the many one-test processes of ctest do not each pay
// for a new one. Written to a private file and renamed into place, so that
// readers never see half a key.
inline std::string SharedRsaPrivateKeyPem() {
  namespace fs = std::filesystem;
  const fs::path path =
      fs::temp_directory_path() /
      ("chat-test-rsa-2048-" + std::to_string(getuid()) + ".pem");
  if (std::ifstream in(path); in) {
    std::stringstream pem;
    pem << in.rdbuf();
    if (pem.str().find("END PRIVATE KEY") != std::string::npos) {
      return pem.str();
    }
  }
  const std::string pem = NewRsaPrivateKeyPem();
  const fs::path part =
      path.string() + "." + std::to_string(getpid()) + ".part";
  {
    std::ofstream out(part);
    out << pem;
  }
  fs::permissions(part, fs::perms::owner_read | fs::perms::owner_write);
  fs::rename(part, path);
  return pem;
}

}  // namespace chat::testing

#endif  // CHAT_COMMON_TEST_KEYS_H_
