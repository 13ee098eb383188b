// Unit tests of conversation trees in the message domain (docs/api.md
// "Conversation trees") over InMemoryMessageStore and a FakeClock.

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/errors.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/message/in_memory_message_store.h"
#include "services/message/messages.h"

namespace chat::message {
namespace {

using ::chat::testing::StatusIs;
using ::testing::ElementsAre;

constexpr char kUser[] = "0190a000-0000-7000-8000-0000000000a1";
constexpr char kOtherUser[] = "0190a000-0000-7000-8000-0000000000a2";
constexpr char kConversation[] = "0190a000-0000-7000-8000-0000000000c1";
constexpr char kSecondConversation[] = "0190a000-0000-7000-8000-0000000000c2";
constexpr char kForeignConversation[] = "0190a000-0000-7000-8000-0000000000c3";

std::vector<std::string> ContentsOf(const std::vector<MessageRecord>& page) {
  std::vector<std::string> contents;
  for (const MessageRecord& m : page) contents.push_back(m.content);
  return contents;
}

class MessageTreeTest : public ::testing::Test {
 protected:
  MessageTreeTest() {
    store_.AddConversation(kUser, kConversation);
    store_.AddConversation(kUser, kSecondConversation);
    store_.AddConversation(kOtherUser, kForeignConversation);
  }

  // A message under `parent` (nullopt: the active leaf; "": a new root).
  MessageRecord Add(const std::string& content, ParentChoice parent = {},
                    const std::string& conversation_id = kConversation) {
    clock_.Advance(absl::Seconds(1));
    absl::StatusOr<MessageRecord> m = messages_.Create(
        kUser, conversation_id,
        {.role = Role::kUser, .content = content, .parent_id = parent}, "");
    EXPECT_TRUE(m.ok()) << m.status();
    return m.value_or(MessageRecord{});
  }

  std::vector<std::string> Branch(
      ListQuery query = {},
      const std::string& conversation_id = kConversation) {
    std::vector<std::string> contents;
    do {
      absl::StatusOr<MessagePage> page =
          messages_.List(kUser, conversation_id, query);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const MessageRecord& m : page->messages) {
        contents.push_back(m.content);
      }
      query.page_token = page->next_page_token;
    } while (!query.page_token.empty());
    return contents;
  }

  std::string ActiveLeaf() {
    return store_.Conversation(kUser, kConversation)->active_leaf_id;
  }

  FakeClock clock_{absl::FromUnixSeconds(1767225600)};
  InMemoryMessageStore store_;
  Messages messages_{&store_, &clock_};
};

TEST_F(MessageTreeTest, MessagesWithoutAParentFormOneBranch) {
  const MessageRecord a = Add("a");
  const MessageRecord b = Add("b");
  const MessageRecord c = Add("c");
  EXPECT_EQ(a.parent_id, "");
  EXPECT_EQ(b.parent_id, a.id);
  EXPECT_EQ(c.parent_id, b.id);
  for (const MessageRecord& m : {a, b, c}) {
    EXPECT_EQ(m.sibling_index, 0);
    EXPECT_EQ(m.sibling_count, 1);
  }
  EXPECT_EQ(ActiveLeaf(), c.id);
  EXPECT_THAT(Branch(), ElementsAre("a", "b", "c"));
}

TEST_F(MessageTreeTest, AParentMakesANewVersionAndMovesTheActiveBranch) {
  const MessageRecord q = Add("question");
  const MessageRecord first = Add("answer 1");
  Add("follow-up");
  const MessageRecord second = Add("answer 2", q.id);
  EXPECT_EQ(second.parent_id, q.id);
  EXPECT_EQ(second.sibling_index, 1);
  EXPECT_EQ(second.sibling_count, 2);
  EXPECT_EQ(ActiveLeaf(), second.id);
  EXPECT_THAT(Branch(), ElementsAre("question", "answer 2"));
  EXPECT_THAT(Branch({.branch = Branch::kAll}),
              ElementsAre("question", "answer 1", "follow-up", "answer 2"));
  EXPECT_THAT(Branch({.order = Order::kDescending}),
              ElementsAre("answer 2", "question"));

  absl::StatusOr<MessageRecord> old =
      messages_.Get(kUser, kConversation, first.id);
  ASSERT_OK(old);
  EXPECT_EQ(old->sibling_index, 0);
  EXPECT_EQ(old->sibling_count, 2) << "the count is as it is now";

  // Without a parent, the next message follows the new version.
  const MessageRecord next = Add("next");
  EXPECT_EQ(next.parent_id, second.id);
}

TEST_F(MessageTreeTest, AnEmptyParentMakesANewRoot) {
  const MessageRecord a = Add("a");
  Add("b");
  const MessageRecord root = Add("a, edited", std::string());
  EXPECT_EQ(root.parent_id, "");
  EXPECT_EQ(root.sibling_index, 1);
  EXPECT_EQ(root.sibling_count, 2);
  EXPECT_THAT(Branch(), ElementsAre("a, edited"));
  EXPECT_EQ(messages_.Get(kUser, kConversation, a.id)->sibling_count, 2);
}

TEST_F(MessageTreeTest, AParentOfAnotherConversationOrUserIsNotFound) {
  Add("a");
  const MessageRecord elsewhere = Add("x", {}, kSecondConversation);
  absl::StatusOr<MessageRecord> foreign_parent = messages_.Create(
      kOtherUser, kForeignConversation,
      {.role = Role::kUser, .content = "f", .parent_id = {}}, "");
  ASSERT_OK(foreign_parent);

  for (const std::string& parent :
       {elsewhere.id, foreign_parent->id,
        std::string("0190a000-0000-7000-8000-0000000000ff")}) {
    EXPECT_THAT(
        messages_.Create(
            kUser, kConversation,
            {.role = Role::kUser, .content = "y", .parent_id = parent}, ""),
        StatusIs(absl::StatusCode::kNotFound, "parent message not found"))
        << parent;
  }
  EXPECT_EQ(store_.Conversation(kUser, kConversation)->message_count, 1)
      << "nothing was stored";
}

TEST_F(MessageTreeTest, AMalformedParentIsInvalidWithTheOtherViolations) {
  absl::StatusOr<MessageRecord> created = messages_.Create(
      kUser, kConversation,
      {.role = std::nullopt, .content = "", .parent_id = "not-a-uuid"}, "");
  ASSERT_THAT(created, StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<std::string> fields;
  for (const FieldViolation& v : ViolationsOf(created.status())) {
    fields.push_back(v.field);
  }
  EXPECT_THAT(fields, ElementsAre("role", "content", "parent_id"));
}

TEST_F(MessageTreeTest, AnIdempotencyKeyCoversTheParent) {
  const MessageRecord q = Add("q");
  Add("a1");
  NewMessage version{.role = Role::kUser, .content = "a2", .parent_id = q.id};
  absl::StatusOr<MessageRecord> first =
      messages_.Create(kUser, kConversation, version, "key-1");
  absl::StatusOr<MessageRecord> again =
      messages_.Create(kUser, kConversation, version, "key-1");
  ASSERT_OK(first);
  ASSERT_OK(again);
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(again->sibling_count, 2);
  EXPECT_EQ(store_.Conversation(kUser, kConversation)->message_count, 3);

  version.parent_id = std::nullopt;  // the same body without the parent
  EXPECT_THAT(messages_.Create(kUser, kConversation, version, "key-1"),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(MessageTreeTest,
       DeletingAVersionDeletesItsSubtreeAndEndsTheBranchAtItsParent) {
  const MessageRecord q = Add("q");
  const MessageRecord a1 = Add("a1");
  Add("a1 follow-up");
  const MessageRecord a2 = Add("a2", q.id);
  const MessageRecord a2_next = Add("a2 follow-up");
  ASSERT_EQ(store_.Conversation(kUser, kConversation)->message_count, 5);

  // Another branch's message: the active branch stays.
  ASSERT_OK(messages_.Delete(kUser, kConversation, a1.id));
  EXPECT_EQ(store_.Conversation(kUser, kConversation)->message_count, 3);
  EXPECT_EQ(ActiveLeaf(), a2_next.id);
  EXPECT_EQ(messages_.Get(kUser, kConversation, a2.id)->sibling_count, 1);
  EXPECT_EQ(messages_.Get(kUser, kConversation, a2.id)->sibling_index, 0);

  // A message of the active branch: it ends at the parent.
  ASSERT_OK(messages_.Delete(kUser, kConversation, a2.id));
  EXPECT_EQ(store_.Conversation(kUser, kConversation)->message_count, 1);
  EXPECT_EQ(ActiveLeaf(), q.id);
  EXPECT_THAT(Branch(), ElementsAre("q"));
  EXPECT_THAT(messages_.Get(kUser, kConversation, a2_next.id),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(MessageTreeTest, DeletingTheActiveRootMovesToTheNewestOtherRoot) {
  const MessageRecord old_root = Add("v1");
  Add("v1 answer");
  const MessageRecord new_root = Add("v2", std::string());
  Add("v2 answer");
  ASSERT_OK(messages_.Delete(kUser, kConversation, new_root.id));
  EXPECT_THAT(Branch(), ElementsAre("v1", "v1 answer"));
  EXPECT_EQ(messages_.Get(kUser, kConversation, old_root.id)->sibling_count, 1);
}

TEST_F(MessageTreeTest, TheActiveBranchPagesWithoutOtherBranches) {
  const MessageRecord root = Add("0");
  for (int i = 1; i < 7; ++i) Add(std::to_string(i));
  Add("old", root.id);  // a version the branch switches to...
  const MessageRecord back = Add("1b", root.id);  // ...and away from
  for (int i = 2; i < 6; ++i) Add(std::to_string(i) + "b");
  EXPECT_EQ(back.sibling_index, 2);
  EXPECT_THAT(Branch({.page_size = 2}),
              ElementsAre("0", "1b", "2b", "3b", "4b", "5b"));
  EXPECT_THAT(Branch({.page_size = 4, .order = Order::kDescending}),
              ElementsAre("5b", "4b", "3b", "2b", "1b", "0"));
  EXPECT_EQ(Branch({.page_size = 3, .branch = Branch::kAll}).size(), 13u);
}

TEST_F(MessageTreeTest, APageTokenBelongsToItsBranchListing) {
  for (int i = 0; i < 3; ++i) Add(std::to_string(i));
  absl::StatusOr<MessagePage> page =
      messages_.List(kUser, kConversation, {.page_size = 1});
  ASSERT_OK(page);
  ASSERT_FALSE(page->next_page_token.empty());
  EXPECT_THAT(messages_.List(kUser, kConversation,
                             {.page_size = 1,
                              .page_token = page->next_page_token,
                              .branch = Branch::kAll}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(messages_.List(kUser, kConversation, {.branch = std::nullopt}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(MessageTreeTest, AForkCopiesThePathToTheMessage) {
  const MessageRecord q = Add("q");
  Add("a1");
  const MessageRecord a2 = Add("a2", q.id);
  Add("after a2");

  absl::StatusOr<ForkedConversation> fork =
      messages_.Fork(kUser, kConversation, a2.id, std::nullopt);
  ASSERT_OK(fork);
  EXPECT_NE(fork->id, kConversation);
  EXPECT_EQ(fork->title, "New Chat") << "the source's title";
  EXPECT_EQ(fork->message_count, 2);
  EXPECT_EQ(fork->last_message_at, a2.created_at);

  const std::vector<MessageRecord> copies =
      store_.StoredMessages(kUser, fork->id);
  ASSERT_THAT(ContentsOf(copies), ElementsAre("q", "a2"));
  EXPECT_NE(copies[0].id, q.id);
  EXPECT_EQ(copies[0].parent_id, "");
  EXPECT_EQ(copies[1].parent_id, copies[0].id);
  EXPECT_EQ(copies[1].created_at, a2.created_at) << "times are kept";
  EXPECT_EQ(fork->active_leaf_id, copies[1].id);
  EXPECT_THAT(Branch({}, fork->id), ElementsAre("q", "a2"));
  // The source is as it was.
  EXPECT_EQ(store_.Conversation(kUser, kConversation)->message_count, 4);

  absl::StatusOr<ForkedConversation> titled =
      messages_.Fork(kUser, kConversation, q.id, "Just the question");
  ASSERT_OK(titled);
  EXPECT_EQ(titled->title, "Just the question");
  EXPECT_EQ(titled->message_count, 1);
}

TEST_F(MessageTreeTest, AForkOfAnotherUsersOrAMissingMessageIsNotFound) {
  const MessageRecord q = Add("q");
  EXPECT_THAT(messages_.Fork(kOtherUser, kConversation, q.id, std::nullopt),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(messages_.Fork(kUser, kSecondConversation, q.id, std::nullopt),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(messages_.Fork(kUser, kConversation, "not-a-uuid", std::nullopt),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(messages_.Fork(kUser, kConversation, q.id, std::string()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace chat::message
