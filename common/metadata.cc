#include "common/metadata.h"

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/utf8.h"

namespace chat {
namespace {

constexpr size_t kMaxKeys = 16;
constexpr size_t kMaxKeyLength = 64;
constexpr size_t kMaxValueLength = 512;

}  // namespace

void ValidateMetadata(absl::string_view field, const Metadata& metadata,
                      FieldViolations& violations) {
  if (metadata.size() > kMaxKeys) {
    violations.Add(field, "must have at most 16 keys");
  }
  for (const auto& [key, value] : metadata) {
    const std::optional<size_t> key_length = CountCodePoints(key);
    if (!key_length || *key_length == 0 || *key_length > kMaxKeyLength ||
        key.find('\0') != std::string::npos) {
      violations.Add(
          field,
          absl::StrCat("key \"", key.substr(0, kMaxKeyLength),
                       "\" must be 1 to 64 characters long, without NUL"));
    }
    const std::optional<size_t> value_length = CountCodePoints(value);
    if (!value_length || *value_length > kMaxValueLength ||
        value.find('\0') != std::string::npos) {
      violations.Add(absl::StrCat(field, ".", key.substr(0, kMaxKeyLength)),
                     "must be at most 512 characters, without NUL");
    }
  }
}

std::string MetadataToJson(const Metadata& metadata) {
  std::string json = "{";
  for (const auto& [key, value] : metadata) {
    if (json.size() > 1) json += ',';
    absl::StrAppend(&json, JsonQuote(key), ":", JsonQuote(value));
  }
  json += '}';
  return json;
}

absl::StatusOr<Metadata> MetadataFromJson(absl::string_view json) {
  if (json == "{}") return Metadata{};  // most rows: no parse needed
  absl::StatusOr<google::protobuf::Struct> parsed = ParseJsonObject(json);
  if (!parsed.ok()) return parsed.status();
  Metadata metadata;
  for (const auto& [key, value] : parsed->fields()) {
    metadata[key] = value.string_value();
  }
  return metadata;
}

}  // namespace chat
