#ifndef CHAT_COMMON_METADATA_H_
#define CHAT_COMMON_METADATA_H_

// The metadata of conversations and messages: string to string, at most 16
// keys, keys 1..64 characters, values up to 512 (docs/api.md). Stored as a
// jsonb object.

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/errors.h"

namespace chat {

using Metadata = std::map<std::string, std::string>;

// Adds a violation on `field` for every broken rule.
void ValidateMetadata(absl::string_view field, const Metadata& metadata,
                      FieldViolations& violations);

// A JSON object of the metadata, for a jsonb parameter.
std::string MetadataToJson(const Metadata& metadata);

// The metadata of a stored JSON object; string values only.
absl::StatusOr<Metadata> MetadataFromJson(absl::string_view json);

}  // namespace chat

#endif  // CHAT_COMMON_METADATA_H_
