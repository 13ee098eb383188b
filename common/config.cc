#include "common/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace chat {
namespace {

const char* NonEmptyEnv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

}  // namespace

std::string EnvOr(const char* name, absl::string_view fallback) {
  const char* value = NonEmptyEnv(name);
  return value != nullptr ? std::string(value) : std::string(fallback);
}

int EnvOr(const char* name, int fallback) {
  int parsed = 0;
  const char* value = NonEmptyEnv(name);
  return value != nullptr && absl::SimpleAtoi(value, &parsed) ? parsed
                                                              : fallback;
}

absl::Duration EnvOr(const char* name, absl::Duration fallback) {
  absl::Duration parsed;
  const char* value = NonEmptyEnv(name);
  return value != nullptr && absl::ParseDuration(value, &parsed) ? parsed
                                                                 : fallback;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::StatusOr<std::string> ReadSecret(absl::string_view name) {
  const std::string var(name);
  if (const char* value = NonEmptyEnv(var.c_str())) return std::string(value);
  const std::string file_var = absl::StrCat(name, "_FILE");
  if (const char* path = NonEmptyEnv(file_var.c_str())) {
    absl::StatusOr<std::string> contents = ReadFile(path);
    if (!contents.ok()) return contents.status();
    absl::string_view trimmed(*contents);
    while (absl::ConsumeSuffix(&trimmed, "\n") ||
           absl::ConsumeSuffix(&trimmed, "\r")) {
    }
    return std::string(trimmed);
  }
  return absl::NotFoundError(
      absl::StrCat("set ", name, " or ", file_var, " in the environment"));
}

}  // namespace chat
