#ifndef CHAT_COMMON_UPDATE_MASK_H_
#define CHAT_COMMON_UPDATE_MASK_H_

// Partial updates (AIP-134), the same way for every resource: with an
// update_mask, exactly the fields it names; without one, the fields the
// request sets to a non-default value. Output-only fields in a mask are
// ignored, fields that can never change are refused, unknown ones too.
//
//   absl::Status s = ApplyUpdateMask(
//       request.has_update_mask() ? &request.update_mask() : nullptr,
//       {{"title", !c.title().empty(), [&] { change.title = c.title(); }}},
//       /*immutable=*/{"role"}, /*output_only=*/{"id", "created_at"});

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/field_mask.pb.h"

namespace chat {

struct UpdatableField {
  absl::string_view path;
  bool set;                    // holds a non-default value in the request
  std::function<void()> take;  // copies it into the change
};

// INVALID_ARGUMENT listing every refused path: on the field itself for an
// immutable one ("cannot change"), on update_mask for an unknown one.
absl::Status ApplyUpdateMask(const google::protobuf::FieldMask* mask,
                             const std::vector<UpdatableField>& updatable,
                             const std::vector<absl::string_view>& immutable,
                             const std::vector<absl::string_view>& output_only);

}  // namespace chat

#endif  // CHAT_COMMON_UPDATE_MASK_H_
