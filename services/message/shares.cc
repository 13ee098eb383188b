#include "services/message/shares.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/ids.h"
#include "common/jwt.h"
#include "common/status_macros.h"

namespace chat::message {
namespace {

constexpr size_t kTokenBytes = 32;
// base64url of 32 bytes, unpadded.
constexpr size_t kTokenLength = 43;

absl::Status ShareNotFound() { return absl::NotFoundError("share not found"); }

absl::Status RefusalError(ShareRefusal refusal, const ShareLimits& limits) {
  switch (refusal) {
    case ShareRefusal::kTooManyShares:
      return absl::FailedPreconditionError(
          absl::StrCat("this conversation has ", limits.max_shares,
                       " shares already: delete one first"));
    case ShareRefusal::kEmpty:
      return absl::FailedPreconditionError(
          "the conversation has no messages to share");
    case ShareRefusal::kTooLarge:
      return absl::FailedPreconditionError(
          absl::StrCat("the active branch is too large to share (at most ",
                       limits.max_messages, " messages and ",
                       limits.max_content_bytes >> 20, " MiB of content)"));
    case ShareRefusal::kNone:
      break;
  }
  return absl::InternalError("no share was made");
}

}  // namespace

std::string NewShareToken() {
  unsigned char secret[kTokenBytes];
  RAND_bytes(secret, sizeof(secret));
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<char*>(secret), sizeof(secret)));
}

std::optional<std::string> ShareTokenHash(absl::string_view token) {
  // The length first: a long path segment costs nothing more to refuse.
  if (token.size() != kTokenLength) return std::nullopt;
  std::optional<std::string> bytes = DecodeBase64UrlStrict(token);
  if (!bytes || bytes->size() != kTokenBytes) return std::nullopt;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(token.data(), token.size(), digest, &length, EVP_sha256(),
             nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), length));
}

std::string ShareUrl(absl::string_view base, absl::string_view token) {
  absl::ConsumeSuffix(&base, "/");
  return absl::StrCat(base, "/v1/shares/", token);
}

absl::Status CheckPublicBaseUrl(absl::string_view base) {
  if (base.empty()) return absl::OkStatus();
  absl::string_view rest = base;
  if (!absl::ConsumePrefix(&rest, "https://") &&
      !absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(
        "the public base URL must start with https:// or http://");
  }
  if (rest.empty() || absl::StrContains(rest, "?") ||
      absl::StrContains(rest, "#")) {
    return absl::InvalidArgumentError(
        "the public base URL needs a host and no query or fragment");
  }
  for (char c : rest) {
    if (c <= 0x20 || c >= 0x7F) {
      return absl::InvalidArgumentError(
          "the public base URL must be printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

Shares::Shares(ShareStore* store, const Clock* clock, SharesOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

absl::StatusOr<CreatedShare> Shares::Create(
    const std::string& user_id, const std::string& conversation_id) {
  RETURN_IF_ERROR(CheckResourceId("conversation", conversation_id));
  const absl::Time now = ToMicroseconds(clock_->Now());
  std::string token = NewShareToken();
  std::optional<std::string> hash = ShareTokenHash(token);
  if (!hash) return absl::InternalError("cannot make a share token");
  const ShareLimits limits;
  ASSIGN_OR_RETURN(StoredShare stored,
                   store_->CreateShare(user_id,
                                       {.id = NewUuidV7(now),
                                        .conversation_id = conversation_id,
                                        .created_at = now},
                                       *hash, limits));
  if (!stored.share) return RefusalError(stored.refusal, limits);
  std::string url = ShareUrl(options_.public_base_url, token);
  return CreatedShare{*std::move(stored.share), std::move(token),
                      std::move(url)};
}

absl::StatusOr<std::vector<ShareRecord>> Shares::List(
    const std::string& user_id, const std::string& conversation_id) {
  RETURN_IF_ERROR(CheckResourceId("conversation", conversation_id));
  return store_->ListShares(user_id, conversation_id);
}

absl::Status Shares::Delete(const std::string& user_id,
                            const std::string& conversation_id,
                            const std::string& share_id) {
  RETURN_IF_ERROR(CheckResourceId("conversation", conversation_id));
  RETURN_IF_ERROR(CheckResourceId("share", share_id));
  return store_->DeleteShare(user_id, conversation_id, share_id);
}

absl::StatusOr<SharedSnapshot> Shares::View(absl::string_view token) {
  std::optional<std::string> hash = ShareTokenHash(token);
  if (!hash) return ShareNotFound();
  return store_->SharedByToken(*hash);
}

}  // namespace chat::message
