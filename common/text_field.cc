#include "common/text_field.h"

#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace chat {

void ValidateText(absl::string_view field, absl::string_view text,
                  size_t max_chars, FieldViolations& violations) {
  const std::optional<size_t> length = CountCodePoints(text);
  if (!length) {
    violations.Add(field, "must be valid UTF-8");
  } else if (*length == 0 || *length > max_chars) {
    violations.Add(
        field, absl::StrCat("must be 1 to ", max_chars, " characters long"));
  } else if (text.find('\0') != absl::string_view::npos) {
    violations.Add(field, "must not contain NUL");
  }
}

}  // namespace chat
