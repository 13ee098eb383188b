#ifndef CHAT_COMMON_TEST_KEYS_H_
#define CHAT_COMMON_TEST_KEYS_H_

// Keys for tests, made fresh for each run.

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

}  // namespace chat::testing

#endif  // CHAT_COMMON_TEST_KEYS_H_
