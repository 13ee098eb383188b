#include "common/log.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/json.h"

namespace chat::log {
namespace {

std::mutex& WriteMutex() {
  static std::mutex mutex;
  return mutex;
}

std::string& ServiceName() {
  static std::string name;
  return name;
}

void Write(absl::string_view level, absl::string_view message,
           std::initializer_list<Field> fields) {
  std::string line = "{\"ts\":";
  line += JsonQuote(absl::FormatTime("%Y-%m-%d%ET%H:%M:%E3SZ", absl::Now(),
                                     absl::UTCTimeZone()));
  line += ",\"level\":";
  line += JsonQuote(level);
  if (!ServiceName().empty()) {
    line += ",\"service\":";
    line += JsonQuote(ServiceName());
  }
  line += ",\"msg\":";
  line += JsonQuote(message);
  for (const Field& field : fields) {
    line += ',';
    line += JsonQuote(field.first);
    line += ':';
    line += JsonQuote(field.second);
  }
  line += "}\n";
  std::lock_guard<std::mutex> lock(WriteMutex());
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

int Failure(absl::string_view what, const absl::Status& status) {
  Error(what, {{"code", absl::StatusCodeToString(status.code())},
               {"error", status.message()}});
  return EXIT_FAILURE;
}

void SetServiceName(absl::string_view name) {
  ServiceName() = std::string(name);
}

void Info(absl::string_view message, std::initializer_list<Field> fields) {
  Write("info", message, fields);
}
void Warn(absl::string_view message, std::initializer_list<Field> fields) {
  Write("warn", message, fields);
}
void Error(absl::string_view message, std::initializer_list<Field> fields) {
  Write("error", message, fields);
}

}  // namespace chat::log
