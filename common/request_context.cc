#include "common/request_context.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace chat {

std::string MetadataOf(const grpc::ServerContextBase& context,
                       absl::string_view key) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  return it == metadata.end()
             ? ""
             : std::string(it->second.data(), it->second.size());
}

std::string RequestIdOf(const grpc::ServerContextBase& context) {
  return MetadataOf(context, "x-request-id");
}

absl::StatusOr<AccessClaims> Authenticate(
    const grpc::ServerContextBase& context, const AccessTokenVerifier& verifier,
    absl::Time now) {
  return Authenticate(MetadataOf(context, "authorization"), verifier, now);
}

absl::StatusOr<AccessClaims> Authenticate(absl::string_view header,
                                          const AccessTokenVerifier& verifier,
                                          absl::Time now) {
  if (header.empty()) {
    return absl::UnauthenticatedError("missing bearer token");
  }
  constexpr absl::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() ||
      !absl::StartsWithIgnoreCase(header, kScheme)) {
    return absl::UnauthenticatedError("authorization must be a bearer token");
  }
  absl::string_view token =
      absl::StripAsciiWhitespace(header.substr(kScheme.size()));
  return verifier.Verify(token, now);
}

}  // namespace chat
