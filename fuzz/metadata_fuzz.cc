// The metadata validator and its JSON form (common/metadata.h): stored JSON
// of any shape, and maps of any keys and values. Metadata that validates
// comes back unchanged from its JSON.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_split.h"
#include "common/errors.h"
#include "common/metadata.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  // As a stored jsonb object.
  if (absl::StatusOr<chat::Metadata> stored = chat::MetadataFromJson(input);
      stored.ok()) {
    chat::FieldViolations violations;
    chat::ValidateMetadata("metadata", *stored, violations);
    (void)violations.ToStatus();
  }

  // As a request's map: "key\x01value\x01key\x01value...".
  chat::Metadata metadata;
  std::vector<absl::string_view> parts = absl::StrSplit(input, '\x01');
  for (size_t i = 0; i + 1 < parts.size(); i += 2) {
    metadata[std::string(parts[i])] = std::string(parts[i + 1]);
  }
  chat::FieldViolations violations;
  chat::ValidateMetadata("metadata", metadata, violations);
  const absl::Status status = violations.ToStatus();
  FUZZ_CHECK(status.ok() == violations.empty());
  if (violations.empty()) {
    absl::StatusOr<chat::Metadata> back =
        chat::MetadataFromJson(chat::MetadataToJson(metadata));
    FUZZ_CHECK(back.ok());
    FUZZ_CHECK(*back == metadata);
  }
  return 0;
}
