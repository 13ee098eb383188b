#include "common/update_mask.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace chat {
namespace {

bool Contains(const std::vector<absl::string_view>& paths,
              absl::string_view path) {
  return std::find(paths.begin(), paths.end(), path) != paths.end();
}

}  // namespace

absl::Status ApplyUpdateMask(
    const google::protobuf::FieldMask* mask,
    const std::vector<UpdatableField>& updatable,
    const std::vector<absl::string_view>& immutable,
    const std::vector<absl::string_view>& output_only) {
  if (mask == nullptr) {
    for (const UpdatableField& field : updatable) {
      if (field.set) field.take();
    }
    return absl::OkStatus();
  }
  FieldViolations violations;
  for (const std::string& path : mask->paths()) {
    auto field =
        std::find_if(updatable.begin(), updatable.end(),
                     [&](const UpdatableField& f) { return f.path == path; });
    if (field != updatable.end()) {
      field->take();
    } else if (Contains(immutable, path)) {
      violations.Add(path, "cannot change");
    } else if (!Contains(output_only, path)) {
      violations.Add("update_mask",
                     absl::StrCat("names an unknown field: ", path));
    }
  }
  return violations.ToStatus();
}

}  // namespace chat
