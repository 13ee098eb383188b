#ifndef CHAT_COMMON_PROTO_METADATA_H_
#define CHAT_COMMON_PROTO_METADATA_H_

// A resource's metadata between its proto map (the wire) and Metadata (the
// domain).

#include <string>

#include "common/metadata.h"
#include "google/protobuf/map.h"

namespace chat {

inline Metadata MetadataFromProto(
    const google::protobuf::Map<std::string, std::string>& metadata) {
  return Metadata(metadata.begin(), metadata.end());
}

inline void MetadataToProto(
    const Metadata& metadata,
    google::protobuf::Map<std::string, std::string>* out) {
  out->insert(metadata.begin(), metadata.end());
}

}  // namespace chat

#endif  // CHAT_COMMON_PROTO_METADATA_H_
