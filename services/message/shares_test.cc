// The share domain over the in-memory stores: snapshots, tokens, limits,
// isolation. The SQL behind it is tested in tests/integration, the routes
// in tests/e2e/shares_test.go.

#include "services/message/shares.h"

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "common/clock.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/message/in_memory_message_store.h"
#include "services/message/in_memory_share_store.h"
#include "services/message/messages.h"

namespace chat::message {
namespace {

using ::chat::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kUser[] = "0190a000-0000-7000-8000-0000000000a1";
constexpr char kOtherUser[] = "0190a000-0000-7000-8000-0000000000a2";
constexpr char kConversation[] = "0190a000-0000-7000-8000-0000000000c1";
constexpr char kEmptyConversation[] = "0190a000-0000-7000-8000-0000000000c2";
// A conversation of kOtherUser.
constexpr char kForeignConversation[] = "0190a000-0000-7000-8000-0000000000c3";

std::vector<std::string> ContentsOf(const SharedSnapshot& snapshot) {
  std::vector<std::string> contents;
  for (const SharedMessage& m : snapshot.messages) {
    contents.push_back(m.content);
  }
  return contents;
}

class SharesTest : public ::testing::Test {
 protected:
  SharesTest() {
    messages_store_.AddConversation(kUser, kConversation, false, "Trip plans");
    messages_store_.AddConversation(kUser, kEmptyConversation);
    messages_store_.AddConversation(kOtherUser, kForeignConversation);
  }

  MessageRecord Add(const std::string& content, Role role = Role::kUser,
                    const std::string& conversation_id = kConversation,
                    const std::string& user = kUser) {
    absl::StatusOr<MessageRecord> m =
        messages_.Create(user, conversation_id,
                         NewMessage{.role = role, .content = content}, "");
    EXPECT_TRUE(m.ok()) << m.status();
    clock_.Advance(absl::Seconds(1));
    return m.value_or(MessageRecord{});
  }

  FakeClock clock_{absl::FromUnixSeconds(1767225600)};
  InMemoryMessageStore messages_store_;
  InMemoryShareStore store_{&messages_store_};
  Messages messages_{&messages_store_, &clock_};
  Shares shares_{&store_, &clock_, {}};
};

TEST(ShareTokenTest, TokensAre43CharactersOfBase64UrlAndDiffer) {
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string token = NewShareToken();
    ASSERT_THAT(token, SizeIs(43));
    for (char c : token) {
      ASSERT_TRUE(absl::ascii_isalnum(c) || c == '-' || c == '_') << token;
    }
    ASSERT_TRUE(ShareTokenHash(token).has_value()) << token;
    seen.insert(token);
  }
  EXPECT_THAT(seen, SizeIs(1000));
}

TEST(ShareTokenTest, HashIsSha256HexOfTheToken) {
  const std::string token = NewShareToken();
  std::optional<std::string> hash = ShareTokenHash(token);
  ASSERT_TRUE(hash.has_value());
  EXPECT_THAT(*hash, SizeIs(64));
  EXPECT_EQ(ShareTokenHash(token), hash);
  EXPECT_NE(ShareTokenHash(NewShareToken()), hash);
}

TEST(ShareTokenTest, MalformedTokensHaveNoHash) {
  const std::string token = NewShareToken();
  EXPECT_FALSE(ShareTokenHash("").has_value());
  EXPECT_FALSE(ShareTokenHash(token.substr(1)).has_value());
  EXPECT_FALSE(ShareTokenHash(token + "A").has_value());
  EXPECT_FALSE(ShareTokenHash(std::string(100000, 'A')).has_value());
  // Padding, the standard alphabet, whitespace, a NUL.
  EXPECT_FALSE(ShareTokenHash(token.substr(0, 42) + "=").has_value());
  EXPECT_FALSE(ShareTokenHash(token.substr(0, 42) + "+").has_value());
  EXPECT_FALSE(ShareTokenHash(token.substr(0, 42) + " ").has_value());
  EXPECT_FALSE(
      ShareTokenHash(token.substr(0, 42) + std::string(1, '\0')).has_value());
  // 43 characters carry 258 bits: the last character's two spare bits must
  // be zero, so that each token has one spelling ("B" sets one of them).
  EXPECT_FALSE(ShareTokenHash(std::string(42, 'A') + "B").has_value());
  EXPECT_TRUE(ShareTokenHash(std::string(42, 'A') + "E").has_value());
}

TEST(ShareUrlTest, PathAloneOrAfterTheBase) {
  EXPECT_EQ(ShareUrl("", "tok"), "/v1/shares/tok");
  EXPECT_EQ(ShareUrl("https://chat.example", "tok"),
            "https://chat.example/v1/shares/tok");
  EXPECT_EQ(ShareUrl("https://chat.example/api/", "tok"),
            "https://chat.example/api/v1/shares/tok");
}

TEST(ShareUrlTest, PublicBaseUrlIsChecked) {
  EXPECT_OK(CheckPublicBaseUrl(""));
  EXPECT_OK(CheckPublicBaseUrl("https://chat.example"));
  EXPECT_OK(CheckPublicBaseUrl("http://127.0.0.1:8080/"));
  EXPECT_THAT(CheckPublicBaseUrl("chat.example"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckPublicBaseUrl("https://"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckPublicBaseUrl("https://chat.example/?a=b"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckPublicBaseUrl("https://chat example"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(SharesTest, ViewShowsTheActiveBranchAsItWasWhenShared) {
  Add("Where should we go?");
  Add("Lisbon.", Role::kAssistant);
  absl::StatusOr<CreatedShare> made = shares_.Create(kUser, kConversation);
  ASSERT_OK(made);
  EXPECT_EQ(made->share.conversation_id, kConversation);
  EXPECT_EQ(made->share.message_count, 2);
  EXPECT_THAT(made->token, SizeIs(43));
  EXPECT_EQ(made->url, "/v1/shares/" + made->token);
  const absl::Time shared_at = clock_.Now();

  absl::StatusOr<SharedSnapshot> view = shares_.View(made->token);
  ASSERT_OK(view);
  EXPECT_EQ(view->title, "Trip plans");
  EXPECT_THAT(ContentsOf(*view), ElementsAre("Where should we go?", "Lisbon."));
  EXPECT_EQ(view->messages[0].role, Role::kUser);
  EXPECT_EQ(view->messages[1].role, Role::kAssistant);
  EXPECT_LT(view->messages[0].created_at, view->messages[1].created_at);
  EXPECT_EQ(view->created_at, ToMicroseconds(shared_at));
}

TEST_F(SharesTest, LaterMessagesAndEditsAreNotShown) {
  MessageRecord question = Add("Where should we go?");
  Add("Lisbon.", Role::kAssistant);
  absl::StatusOr<CreatedShare> made = shares_.Create(kUser, kConversation);
  ASSERT_OK(made);

  Add("And in winter?");
  ASSERT_OK(messages_.Update(kUser, kConversation, question.id,
                             {.content = "Where should we NOT go?"}));
  // An edit as a new version: the active branch moves to it.
  ASSERT_OK(messages_.Create(
      kUser, kConversation,
      NewMessage{
          .role = Role::kUser, .content = "A new version", .parent_id = ""},
      ""));

  absl::StatusOr<SharedSnapshot> view = shares_.View(made->token);
  ASSERT_OK(view);
  EXPECT_THAT(ContentsOf(*view), ElementsAre("Where should we go?", "Lisbon."));
  // A share made now shows the branch as it is now.
  absl::StatusOr<CreatedShare> again = shares_.Create(kUser, kConversation);
  ASSERT_OK(again);
  absl::StatusOr<SharedSnapshot> now = shares_.View(again->token);
  ASSERT_OK(now);
  EXPECT_THAT(ContentsOf(*now), ElementsAre("A new version"));
}

TEST_F(SharesTest, OnlyTheActiveBranchWithoutRepliesInProgress) {
  Add("v1");
  Add("answer to v1", Role::kAssistant);
  // A second version of the first message: its branch becomes active.
  ASSERT_OK(messages_.Create(
      kUser, kConversation,
      NewMessage{.role = Role::kUser, .content = "v2", .parent_id = ""}, ""));
  // A reply in progress under it: its text is not final, so not shared.
  ASSERT_OK(messages_store_.StartReply(
      kUser, std::nullopt, std::nullopt,
      MessageRecord{.id = "0190a000-0000-7000-8000-00000000ee01",
                    .conversation_id = kConversation,
                    .role = Role::kAssistant,
                    .content = "half a sent",
                    .status = MessageStatus::kInProgress,
                    .created_at = clock_.Now(),
                    .updated_at = clock_.Now()},
      std::nullopt, 1, 10, {}));
  absl::StatusOr<CreatedShare> made = shares_.Create(kUser, kConversation);
  ASSERT_OK(made);
  EXPECT_EQ(made->share.message_count, 1);
  absl::StatusOr<SharedSnapshot> view = shares_.View(made->token);
  ASSERT_OK(view);
  EXPECT_THAT(ContentsOf(*view), ElementsAre("v2"));
}

TEST_F(SharesTest, OnlyTheHashOfTheTokenIsStored) {
  Add("hello");
  absl::StatusOr<CreatedShare> made = shares_.Create(kUser, kConversation);
  ASSERT_OK(made);
  EXPECT_THAT(store_.TokenHashes(), ElementsAre(*ShareTokenHash(made->token)));
  EXPECT_THAT(store_.TokenHashes(), Not(ElementsAre(made->token)));
}

TEST_F(SharesTest, UrlStartsWithThePublicBaseUrl) {
  Add("hello");
  Shares shares(&store_, &clock_, {.public_base_url = "https://chat.example/"});
  absl::StatusOr<CreatedShare> made = shares.Create(kUser, kConversation);
  ASSERT_OK(made);
  EXPECT_EQ(made->url, "https://chat.example/v1/shares/" + made->token);
}

TEST_F(SharesTest, UnknownMalformedAndRevokedTokensAreTheSameNotFound) {
  Add("hello");
  absl::StatusOr<CreatedShare> made = shares_.Create(kUser, kConversation);
  ASSERT_OK(made);
  ASSERT_OK(shares_.Delete(kUser, kConversation, made->share.id));
  const absl::Status revoked = shares_.View(made->token).status();
  const absl::Status unknown = shares_.View(NewShareToken()).status();
  const absl::Status malformed = shares_.View("not a token").status();
  EXPECT_THAT(revoked, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(unknown, revoked);
  EXPECT_EQ(malformed, revoked);
  EXPECT_EQ(shares_.View(std::string(5000, 'A')).status(), revoked);
}

TEST_F(SharesTest, ListIsNewestFirstAndDeleteRevokesOneShare) {
  Add("hello");
  absl::StatusOr<CreatedShare> first = shares_.Create(kUser, kConversation);
  ASSERT_OK(first);
  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<CreatedShare> second = shares_.Create(kUser, kConversation);
  ASSERT_OK(second);
  absl::StatusOr<std::vector<ShareRecord>> list =
      shares_.List(kUser, kConversation);
  ASSERT_OK(list);
  ASSERT_THAT(*list, SizeIs(2));
  EXPECT_EQ((*list)[0].id, second->share.id);
  EXPECT_EQ((*list)[1].id, first->share.id);
  EXPECT_EQ((*list)[0].message_count, 1);

  ASSERT_OK(shares_.Delete(kUser, kConversation, first->share.id));
  EXPECT_THAT(shares_.Delete(kUser, kConversation, first->share.id),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("share")));
  EXPECT_THAT(shares_.View(first->token),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK(shares_.View(second->token));
  list = shares_.List(kUser, kConversation);
  ASSERT_OK(list);
  ASSERT_THAT(*list, SizeIs(1));
}

TEST_F(SharesTest, AnotherUsersConversationIsNotFound) {
  Add("secret", Role::kUser, kForeignConversation, kOtherUser);
  absl::StatusOr<CreatedShare> theirs =
      shares_.Create(kOtherUser, kForeignConversation);
  ASSERT_OK(theirs);
  EXPECT_THAT(shares_.Create(kUser, kForeignConversation),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(shares_.List(kUser, kForeignConversation),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(shares_.Delete(kUser, kForeignConversation, theirs->share.id),
              StatusIs(absl::StatusCode::kNotFound));
  // Their share under my conversation's id is no more mine.
  Add("mine");
  EXPECT_THAT(shares_.Delete(kUser, kConversation, theirs->share.id),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK(shares_.View(theirs->token));
}

TEST_F(SharesTest, BadIdsAreNotFound) {
  for (const std::string& bad :
       {std::string(""), std::string("nope"), std::string(36, 'x'),
        std::string("0190a000-0000-7000-8000-0000000000c1x")}) {
    EXPECT_THAT(shares_.Create(kUser, bad),
                StatusIs(absl::StatusCode::kNotFound))
        << bad;
    EXPECT_THAT(shares_.List(kUser, bad), StatusIs(absl::StatusCode::kNotFound))
        << bad;
    EXPECT_THAT(shares_.Delete(kUser, kConversation, bad),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("share")))
        << bad;
  }
}

TEST_F(SharesTest, AnEmptyConversationCannotBeShared) {
  EXPECT_THAT(shares_.Create(kUser, kEmptyConversation),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no messages")));
  absl::StatusOr<std::vector<ShareRecord>> list =
      shares_.List(kUser, kEmptyConversation);
  ASSERT_OK(list);
  EXPECT_THAT(*list, IsEmpty());
}

TEST_F(SharesTest, SharesPerConversationAreCapped) {
  Add("hello");
  std::string first_id;
  for (int i = 0; i < kMaxSharesPerConversation; ++i) {
    absl::StatusOr<CreatedShare> made = shares_.Create(kUser, kConversation);
    ASSERT_OK(made);
    if (i == 0) first_id = made->share.id;
  }
  EXPECT_THAT(shares_.Create(kUser, kConversation),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("delete one first")));
  ASSERT_OK(shares_.Delete(kUser, kConversation, first_id));
  EXPECT_OK(shares_.Create(kUser, kConversation));
}

TEST_F(SharesTest, ABranchOverTheLimitsCannotBeShared) {
  // 8 MiB of content is 84 messages of 100,000 characters (a little over).
  const std::string big(100000, 'x');
  for (int i = 0; i * 100000 <= kMaxSharedContentBytes; ++i) Add(big);
  EXPECT_THAT(
      shares_.Create(kUser, kConversation),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("too large")));
  absl::StatusOr<std::vector<ShareRecord>> list =
      shares_.List(kUser, kConversation);
  ASSERT_OK(list);
  EXPECT_THAT(*list, IsEmpty());
}

TEST_F(SharesTest, ABranchAtTheLimitCanBeShared) {
  const std::string big(100000, 'x');
  for (int i = 0; (i + 1) * 100000 <= kMaxSharedContentBytes; ++i) Add(big);
  absl::StatusOr<CreatedShare> made = shares_.Create(kUser, kConversation);
  ASSERT_OK(made);
  EXPECT_EQ(made->share.message_count, kMaxSharedContentBytes / 100000);
}

}  // namespace
}  // namespace chat::message
