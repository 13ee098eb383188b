// Unit tests of the message domain (docs/api.md "Messages", docs/api.md
// "Messages") over InMemoryMessageStore and a FakeClock: no database.

#include "services/message/messages.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/message/in_memory_message_store.h"

namespace chat::message {
namespace {

using ::chat::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr char kUser[] = "0190a000-0000-7000-8000-0000000000a1";
constexpr char kOtherUser[] = "0190a000-0000-7000-8000-0000000000a2";
constexpr char kConversation[] = "0190a000-0000-7000-8000-0000000000c1";
// Another conversation of kUser.
constexpr char kSecondConversation[] = "0190a000-0000-7000-8000-0000000000c2";
// A conversation of kOtherUser.
constexpr char kForeignConversation[] = "0190a000-0000-7000-8000-0000000000c3";

constexpr int64_t kMaxPageContentBytes = 4 << 20;
// U+1F600, four bytes in UTF-8.
constexpr char kEmoji[] = "\xF0\x9F\x98\x80";

std::string Repeat(absl::string_view text, int times) {
  std::string out;
  out.reserve(text.size() * times);
  for (int i = 0; i < times; ++i) out.append(text.data(), text.size());
  return out;
}

std::vector<std::string> FieldsOf(const absl::Status& status) {
  std::vector<std::string> fields;
  for (const FieldViolation& v : ViolationsOf(status)) {
    fields.push_back(v.field);
  }
  return fields;
}

template <typename T>
std::vector<std::string> FieldsOf(const absl::StatusOr<T>& status_or) {
  return FieldsOf(status_or.status());
}

std::vector<std::string> ContentsOf(const std::vector<MessageRecord>& page) {
  std::vector<std::string> contents;
  for (const MessageRecord& m : page) contents.push_back(m.content);
  return contents;
}

std::vector<std::string> IdsOf(const std::vector<MessageRecord>& messages) {
  std::vector<std::string> ids;
  for (const MessageRecord& m : messages) ids.push_back(m.id);
  return ids;
}

class MessagesTest : public ::testing::Test {
 protected:
  MessagesTest() {
    store_.AddConversation(kUser, kConversation);
    store_.AddConversation(kUser, kSecondConversation);
    store_.AddConversation(kOtherUser, kForeignConversation);
  }

  absl::StatusOr<MessageRecord> Create(
      const std::string& content, const std::string& key = "",
      const std::string& conversation_id = kConversation,
      std::optional<Role> role = Role::kUser, Metadata metadata = {}) {
    return messages_.Create(
        kUser, conversation_id,
        NewMessage{.role = role, .content = content, .metadata = metadata},
        key);
  }

  // Creates `count` messages "0", "1", ... and answers their ids.
  std::vector<std::string> CreateMany(
      int count, const std::string& conversation_id = kConversation) {
    std::vector<std::string> ids;
    for (int i = 0; i < count; ++i) {
      absl::StatusOr<MessageRecord> m =
          Create(absl::StrCat(i), "", conversation_id);
      EXPECT_TRUE(m.ok()) << m.status();
      if (m.ok()) ids.push_back(m->id);
    }
    return ids;
  }

  // Every message of the conversation, page by page, and how many pages.
  std::vector<MessageRecord> ListAll(Order order, int page_size, int* pages) {
    std::vector<MessageRecord> all;
    ListQuery query{.page_size = page_size, .order = order};
    *pages = 0;
    do {
      absl::StatusOr<MessagePage> page =
          messages_.List(kUser, kConversation, query);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || ++*pages > 1000) break;
      all.insert(all.end(), page->messages.begin(), page->messages.end());
      query.page_token = page->next_page_token;
    } while (!query.page_token.empty());
    return all;
  }

  int64_t MessageCount(const std::string& conversation_id = kConversation) {
    return store_.Conversation(kUser, conversation_id)->message_count;
  }

  // Sub-microsecond on purpose: stored times are whole microseconds.
  FakeClock clock_{absl::FromUnixSeconds(1767225600) + absl::Nanoseconds(789)};
  InMemoryMessageStore store_;
  Messages messages_{&store_, &clock_};
};

// --- Create -----------------------------------------------------------------

TEST_F(MessagesTest, CreateStoresTheMessageVerbatimAsComplete) {
  const std::string content = "<b>Tom & \"Jerry\"</b>\n\t &amp; \xC3\xA9";
  absl::StatusOr<MessageRecord> created =
      Create(content, "", kConversation, Role::kAssistant, {{"k", "v"}});
  ASSERT_OK(created);
  EXPECT_TRUE(IsUuid(created->id));
  EXPECT_EQ(created->conversation_id, kConversation);
  EXPECT_EQ(created->seq, 1);
  EXPECT_EQ(created->role, Role::kAssistant);
  EXPECT_EQ(created->content, content) << "stored exactly as sent";
  EXPECT_EQ(created->status, MessageStatus::kComplete);
  EXPECT_EQ(created->model, "");
  EXPECT_EQ(created->metadata, (Metadata{{"k", "v"}}));
  EXPECT_EQ(created->created_at, ToMicroseconds(clock_.Now()));
  EXPECT_NE(created->created_at, clock_.Now()) << "whole microseconds";
  EXPECT_EQ(created->updated_at, created->created_at);

  absl::StatusOr<MessageRecord> read =
      messages_.Get(kUser, kConversation, created->id);
  ASSERT_OK(read);
  EXPECT_EQ(read->content, content);
  EXPECT_EQ(read->created_at, created->created_at);

  const auto conversation = store_.Conversation(kUser, kConversation);
  EXPECT_EQ(conversation->message_count, 1);
  EXPECT_EQ(conversation->last_message_at, created->created_at);
  EXPECT_EQ(conversation->updated_at, created->created_at)
      << "appending counts as activity";
}

TEST_F(MessagesTest, CreateAcceptsEachOfTheThreeRoles) {
  for (Role role : {Role::kUser, Role::kAssistant, Role::kSystem}) {
    absl::StatusOr<MessageRecord> created =
        Create("hello", "", kConversation, role);
    ASSERT_OK(created);
    EXPECT_EQ(created->role, role);
  }
  EXPECT_EQ(MessageCount(), 3);
}

TEST_F(MessagesTest, CreateWithoutARoleNamesTheFieldRole) {
  absl::StatusOr<MessageRecord> created =
      Create("hello", "", kConversation, std::nullopt);
  EXPECT_THAT(created, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FieldsOf(created), ElementsAre("role"));
  EXPECT_THAT(ViolationsOf(created.status())[0].description,
              HasSubstr("user, assistant or system"));
  EXPECT_EQ(MessageCount(), 0);
}

TEST_F(MessagesTest, ContentIsOneTo100000CharactersNotBytes) {
  absl::StatusOr<MessageRecord> longest = Create(Repeat(kEmoji, 100000));
  ASSERT_OK(longest) << "100,000 four-byte characters";
  EXPECT_EQ(longest->content.size(), 400000u);

  for (const std::string& content :
       {std::string(), Repeat(kEmoji, 100001), std::string(100001, 'a')}) {
    absl::StatusOr<MessageRecord> created = Create(content);
    EXPECT_THAT(created, StatusIs(absl::StatusCode::kInvalidArgument))
        << content.size() << " bytes";
    EXPECT_THAT(FieldsOf(created), ElementsAre("content"));
  }
  EXPECT_EQ(MessageCount(), 1);
}

TEST_F(MessagesTest, ContentMustBeValidUtf8WithoutNul) {
  const std::string invalid[] = {
      "\xC3\x28",         // a lead byte without its continuation
      "\xC0\xAF",         // overlong '/'
      "\xED\xA0\x80",     // a surrogate
      "ok \xF0\x9F\x98",  // cut short
      "\xFF",             // never valid
      std::string("a\0b", 3),
      std::string(1, '\0'),
  };
  for (const std::string& content : invalid) {
    absl::StatusOr<MessageRecord> created = Create(content);
    EXPECT_THAT(created, StatusIs(absl::StatusCode::kInvalidArgument))
        << absl::CHexEscape(content);
    EXPECT_THAT(FieldsOf(created), ElementsAre("content"))
        << absl::CHexEscape(content);
  }
  EXPECT_EQ(MessageCount(), 0);
}

TEST_F(MessagesTest, MetadataAtItsLimitsIsAccepted) {
  Metadata metadata;
  for (int i = 0; i < 15; ++i) metadata[absl::StrCat("key", i)] = "v";
  metadata[Repeat("\xC3\xA9", 64)] = Repeat("\xC3\xA9", 512);  // characters
  ASSERT_EQ(metadata.size(), 16u);
  absl::StatusOr<MessageRecord> created =
      Create("hi", "", kConversation, Role::kUser, metadata);
  ASSERT_OK(created);
  EXPECT_EQ(created->metadata, metadata);
  EXPECT_OK(Create("hi", "", kConversation, Role::kUser, {{"empty", ""}}))
      << "values may be empty";
}

TEST_F(MessagesTest, MetadataRulesAreEnforced) {
  Metadata seventeen;
  for (int i = 0; i < 17; ++i) seventeen[absl::StrCat("key", i)] = "v";
  const std::pair<Metadata, std::string> cases[] = {
      {seventeen, "metadata"},
      {{{"", "v"}}, "metadata"},
      {{{std::string(65, 'k'), "v"}}, "metadata"},
      {{{std::string("k\0k", 3), "v"}}, "metadata"},
      {{{"k", std::string(513, 'v')}}, "metadata.k"},
      {{{"k", std::string("v\0v", 3)}}, "metadata.k"},
      {{{"k", "\xC3\x28"}}, "metadata.k"},
  };
  for (const auto& [metadata, field] : cases) {
    absl::StatusOr<MessageRecord> created =
        Create("hi", "", kConversation, Role::kUser, metadata);
    EXPECT_THAT(created, StatusIs(absl::StatusCode::kInvalidArgument)) << field;
    EXPECT_THAT(FieldsOf(created), ElementsAre(field));
  }
  EXPECT_EQ(MessageCount(), 0);
}

TEST_F(MessagesTest, EveryViolationIsListedAtOnce) {
  Metadata metadata;
  for (int i = 0; i < 16; ++i) metadata[absl::StrCat("key", i)] = "v";
  metadata["long"] = std::string(513, 'v');
  absl::StatusOr<MessageRecord> created =
      Create("", "", kConversation, std::nullopt, metadata);
  EXPECT_THAT(created, StatusIs(absl::StatusCode::kInvalidArgument,
                                "validation failed"));
  EXPECT_THAT(
      FieldsOf(created),
      UnorderedElementsAre("role", "content", "metadata", "metadata.long"));
  EXPECT_EQ(MessageCount(), 0);
}

// A validation error lists every offending field, the Idempotency-Key's
// too (it was checked only after the others had been returned).
TEST_F(MessagesTest, MalformedIdempotencyKeyIsListedWithTheOtherViolations) {
  absl::StatusOr<MessageRecord> created =
      Create("", std::string(1, '\x01'), kConversation, std::nullopt);
  EXPECT_THAT(created, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FieldsOf(created),
              UnorderedElementsAre("role", "content", "idempotency_key"));
}

// --- Idempotency ------------------------------------------------------------

TEST_F(MessagesTest, SameKeyAndRequestReplaysTheFirstMessage) {
  absl::StatusOr<MessageRecord> first = Create("hello", "retry-1");
  ASSERT_OK(first);
  clock_.Advance(absl::Hours(1));
  absl::StatusOr<MessageRecord> again = Create("hello", "retry-1");
  ASSERT_OK(again);
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(again->created_at, first->created_at);
  EXPECT_EQ(MessageCount(), 1) << "nothing created twice";
  EXPECT_EQ(store_.StoredMessages(kUser, kConversation).size(), 1u);
}

TEST_F(MessagesTest, ReplayAnswersTheMessageAsItIsNow) {
  absl::StatusOr<MessageRecord> first = Create("hello", "retry-1");
  ASSERT_OK(first);
  ASSERT_OK(
      messages_.Update(kUser, kConversation, first->id, {.content = "edited"}));
  absl::StatusOr<MessageRecord> again = Create("hello", "retry-1");
  ASSERT_OK(again);
  EXPECT_EQ(again->content, "edited");

  ASSERT_OK(messages_.Delete(kUser, kConversation, first->id));
  EXPECT_THAT(Create("hello", "retry-1"),
              StatusIs(absl::StatusCode::kNotFound, "message not found"))
      << "deleted since";
}

TEST_F(MessagesTest, SameKeyWithAnotherRequestIsAConflict) {
  ASSERT_OK(Create("hello", "retry-1", kConversation, Role::kUser, {}));
  const absl::StatusOr<MessageRecord> others[] = {
      Create("other body", "retry-1", kConversation, Role::kUser, {}),
      Create("hello", "retry-1", kConversation, Role::kSystem, {}),
      Create("hello", "retry-1", kConversation, Role::kUser, {{"k", "v"}}),
      Create("hello", "retry-1", kSecondConversation, Role::kUser, {}),
  };
  for (const absl::StatusOr<MessageRecord>& other : others) {
    EXPECT_THAT(other, StatusIs(absl::StatusCode::kAlreadyExists));
    EXPECT_THAT(FieldsOf(other), ElementsAre("idempotency_key"));
  }
  EXPECT_EQ(MessageCount(kConversation), 1);
  EXPECT_EQ(MessageCount(kSecondConversation), 0);
}

TEST_F(MessagesTest, MalformedIdempotencyKeyIsInvalid) {
  const std::string malformed[] = {
      std::string(256, 'k'),
      std::string(1, '\x01'),
      "tab\there",
      "\xD0\xBA\xD0\xBB\xD1\x8E\xD1\x87",  // "ключ"
      "\x7F",
  };
  for (const std::string& key : malformed) {
    absl::StatusOr<MessageRecord> created = Create("hello", key);
    EXPECT_THAT(created, StatusIs(absl::StatusCode::kInvalidArgument))
        << absl::CHexEscape(key);
    EXPECT_THAT(FieldsOf(created), ElementsAre("idempotency_key"));
  }
  EXPECT_EQ(MessageCount(), 0);
  EXPECT_OK(Create("hello", std::string(255, '~')));
  EXPECT_OK(Create("hello", " ")) << "printable ASCII includes the space";
}

TEST_F(MessagesTest, AnEmptyKeyIsNoKey) {
  ASSERT_OK(Create("hello", ""));
  ASSERT_OK(Create("hello", ""));
  EXPECT_EQ(MessageCount(), 2);
  EXPECT_EQ(store_.IdempotencyKeyCount(kUser), 0u);
}

TEST_F(MessagesTest, KeysArePerUser) {
  ASSERT_OK(Create("hello", "shared-key"));
  absl::StatusOr<MessageRecord> theirs =
      messages_.Create(kOtherUser, kForeignConversation,
                       {.role = Role::kUser, .content = "hello"}, "shared-key");
  ASSERT_OK(theirs) << "another user's key never conflicts";
  EXPECT_EQ(theirs->conversation_id, kForeignConversation);
}

TEST_F(MessagesTest, KeysAreKeptFor24Hours) {
  absl::StatusOr<MessageRecord> first = Create("hello", "daily");
  ASSERT_OK(first);
  clock_.Advance(absl::Hours(24) - absl::Seconds(1));
  absl::StatusOr<MessageRecord> within = Create("hello", "daily");
  ASSERT_OK(within);
  EXPECT_EQ(within->id, first->id);
  clock_.Advance(absl::Seconds(2));
  absl::StatusOr<MessageRecord> after = Create("hello", "daily");
  ASSERT_OK(after);
  EXPECT_NE(after->id, first->id) << "the key expired: a new message";
  EXPECT_EQ(MessageCount(), 2);
}

TEST_F(MessagesTest, AFailedCreateDoesNotUseUpItsKey) {
  EXPECT_THAT(Create("hello", "k1", kForeignConversation),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK(Create("another body", "k1", kConversation))
      << "the failed create kept no key";
}

// --- Ids and ownership ------------------------------------------------------

TEST_F(MessagesTest, MalformedConversationIdsAreNotFound) {
  absl::StatusOr<MessageRecord> m = Create("hello");
  ASSERT_OK(m);
  for (const std::string& bad :
       {std::string("not-a-uuid"), std::string(),
        std::string(kConversation).substr(1), std::string(kConversation) + "0",
        std::string("../") + kConversation,
        std::string(kConversation).replace(8, 1, "_")}) {
    constexpr auto kNotFound = absl::StatusCode::kNotFound;
    EXPECT_THAT(
        messages_.Create(kUser, bad, {.role = Role::kUser, .content = "x"}, ""),
        StatusIs(kNotFound, "conversation not found"))
        << bad;
    EXPECT_THAT(messages_.List(kUser, bad, {}),
                StatusIs(kNotFound, "conversation not found"));
    EXPECT_THAT(messages_.Get(kUser, bad, m->id),
                StatusIs(kNotFound, "conversation not found"));
    EXPECT_THAT(messages_.Update(kUser, bad, m->id, {.content = "y"}),
                StatusIs(kNotFound, "conversation not found"));
    EXPECT_THAT(messages_.Delete(kUser, bad, m->id),
                StatusIs(kNotFound, "conversation not found"));
    EXPECT_THAT(messages_.Clear(kUser, bad),
                StatusIs(kNotFound, "conversation not found"));
  }
  EXPECT_EQ(MessageCount(), 1);
}

TEST_F(MessagesTest, MalformedMessageIdsAreNotFound) {
  ASSERT_OK(Create("hello"));
  for (const std::string& bad : {std::string("42"), std::string()}) {
    constexpr auto kNotFound = absl::StatusCode::kNotFound;
    EXPECT_THAT(messages_.Get(kUser, kConversation, bad),
                StatusIs(kNotFound, "message not found"));
    EXPECT_THAT(messages_.Update(kUser, kConversation, bad, {.content = "y"}),
                StatusIs(kNotFound, "message not found"));
    EXPECT_THAT(messages_.Delete(kUser, kConversation, bad),
                StatusIs(kNotFound, "message not found"));
  }
  EXPECT_EQ(MessageCount(), 1);
}

TEST_F(MessagesTest, AnotherUsersConversationIsNotFound) {
  absl::StatusOr<MessageRecord> theirs =
      messages_.Create(kOtherUser, kForeignConversation,
                       {.role = Role::kUser, .content = "private"}, "");
  ASSERT_OK(theirs);
  constexpr auto kNotFound = absl::StatusCode::kNotFound;
  EXPECT_THAT(Create("intrusion", "", kForeignConversation),
              StatusIs(kNotFound));
  EXPECT_THAT(messages_.List(kUser, kForeignConversation, {}),
              StatusIs(kNotFound));
  EXPECT_THAT(messages_.Get(kUser, kForeignConversation, theirs->id),
              StatusIs(kNotFound));
  EXPECT_THAT(messages_.Get(kUser, kConversation, theirs->id),
              StatusIs(kNotFound))
      << "nor through a conversation of the caller";
  EXPECT_THAT(messages_.Update(kUser, kForeignConversation, theirs->id,
                               {.content = "changed"}),
              StatusIs(kNotFound));
  EXPECT_THAT(messages_.Delete(kUser, kForeignConversation, theirs->id),
              StatusIs(kNotFound));
  EXPECT_THAT(messages_.Clear(kUser, kForeignConversation),
              StatusIs(kNotFound));

  const std::vector<MessageRecord> kept =
      store_.StoredMessages(kOtherUser, kForeignConversation);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].content, "private");
  EXPECT_EQ(
      store_.Conversation(kOtherUser, kForeignConversation)->message_count, 1);
}

TEST_F(MessagesTest, AMessageIsFoundOnlyInItsConversation) {
  absl::StatusOr<MessageRecord> m = Create("hello");
  ASSERT_OK(m);
  EXPECT_THAT(messages_.Get(kUser, kSecondConversation, m->id),
              StatusIs(absl::StatusCode::kNotFound, "message not found"));
  EXPECT_THAT(messages_.Delete(kUser, kSecondConversation, m->id),
              StatusIs(absl::StatusCode::kNotFound, "message not found"));
  EXPECT_OK(messages_.Get(kUser, kConversation, m->id));
}

// --- List -------------------------------------------------------------------

TEST_F(MessagesTest, EmptyConversationListsNoMessages) {
  absl::StatusOr<MessagePage> page = messages_.List(kUser, kConversation, {});
  ASSERT_OK(page);
  EXPECT_THAT(page->messages, IsEmpty());
  EXPECT_EQ(page->next_page_token, "");
}

TEST_F(MessagesTest, DefaultPageSizeIs50) {
  CreateMany(51);
  absl::StatusOr<MessagePage> first =
      messages_.List(kUser, kConversation, {.page_size = 0});
  ASSERT_OK(first);
  EXPECT_EQ(first->messages.size(), 50u);
  EXPECT_EQ(first->messages.front().content, "0") << "oldest first";
  ASSERT_NE(first->next_page_token, "");
  absl::StatusOr<MessagePage> rest = messages_.List(
      kUser, kConversation, {.page_token = first->next_page_token});
  ASSERT_OK(rest);
  EXPECT_THAT(ContentsOf(rest->messages), ElementsAre("50"));
  EXPECT_EQ(rest->next_page_token, "");
}

TEST_F(MessagesTest, PageSizeIsLoweredTo200) {
  CreateMany(201);
  absl::StatusOr<MessagePage> first =
      messages_.List(kUser, kConversation, {.page_size = 100000});
  ASSERT_OK(first);
  EXPECT_EQ(first->messages.size(), 200u);
  ASSERT_NE(first->next_page_token, "");
  absl::StatusOr<MessagePage> rest = messages_.List(
      kUser, kConversation,
      {.page_size = 100000, .page_token = first->next_page_token});
  ASSERT_OK(rest);
  EXPECT_THAT(ContentsOf(rest->messages), ElementsAre("200"));
  EXPECT_EQ(rest->next_page_token, "");
}

TEST_F(MessagesTest, NegativePageSizeAndUnknownOrderAreListedTogether) {
  absl::StatusOr<MessagePage> page =
      messages_.List(kUser, kConversation, {.page_size = -1});
  EXPECT_THAT(page, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FieldsOf(page), ElementsAre("page_size"));

  page = messages_.List(kUser, kConversation,
                        {.page_size = -5, .order = std::nullopt});
  EXPECT_THAT(page, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FieldsOf(page), UnorderedElementsAre("order", "page_size"));
}

TEST_F(MessagesTest, DescendingListsNewestFirst) {
  CreateMany(5);
  ListQuery query{.page_size = 2, .order = Order::kDescending};
  absl::StatusOr<MessagePage> page =
      messages_.List(kUser, kConversation, query);
  ASSERT_OK(page);
  EXPECT_THAT(ContentsOf(page->messages), ElementsAre("4", "3"));
  query.page_token = page->next_page_token;
  page = messages_.List(kUser, kConversation, query);
  ASSERT_OK(page);
  EXPECT_THAT(ContentsOf(page->messages), ElementsAre("2", "1"));
  query.page_token = page->next_page_token;
  page = messages_.List(kUser, kConversation, query);
  ASSERT_OK(page);
  EXPECT_THAT(ContentsOf(page->messages), ElementsAre("0"));
  EXPECT_EQ(page->next_page_token, "");
}

TEST_F(MessagesTest, PagingNeitherRepeatsNorSkips) {
  const std::vector<std::string> ids = CreateMany(23);
  CreateMany(4, kSecondConversation);  // never listed here
  int pages = 0;
  EXPECT_THAT(IdsOf(ListAll(Order::kAscending, 5, &pages)),
              ElementsAreArray(ids));
  EXPECT_EQ(pages, 5);
  std::vector<std::string> reversed(ids.rbegin(), ids.rend());
  EXPECT_THAT(IdsOf(ListAll(Order::kDescending, 5, &pages)),
              ElementsAreArray(reversed));
  EXPECT_EQ(pages, 5);
  EXPECT_THAT(IdsOf(ListAll(Order::kAscending, 23, &pages)),
              ElementsAreArray(ids));
  EXPECT_EQ(pages, 1) << "a last page that is exactly full has no token";
}

TEST_F(MessagesTest, AppendingWhilePagingNeitherRepeatsNorSkips) {
  std::vector<std::string> ids = CreateMany(6);
  ListQuery query{.page_size = 4};
  absl::StatusOr<MessagePage> page =
      messages_.List(kUser, kConversation, query);
  ASSERT_OK(page);
  std::vector<std::string> seen = IdsOf(page->messages);
  for (const std::string& id : CreateMany(3)) ids.push_back(id);
  while (!page->next_page_token.empty()) {
    query.page_token = page->next_page_token;
    page = messages_.List(kUser, kConversation, query);
    ASSERT_OK(page);
    for (const std::string& id : IdsOf(page->messages)) seen.push_back(id);
  }
  EXPECT_THAT(seen, ElementsAreArray(ids));
}

TEST_F(MessagesTest, APageTokenOfAnotherListingIsInvalid) {
  CreateMany(3);
  CreateMany(3, kSecondConversation);
  absl::StatusOr<MessagePage> asc =
      messages_.List(kUser, kConversation, {.page_size = 1});
  ASSERT_OK(asc);
  ASSERT_NE(asc->next_page_token, "");

  absl::StatusOr<MessagePage> other_conversation =
      messages_.List(kUser, kSecondConversation,
                     {.page_size = 1, .page_token = asc->next_page_token});
  EXPECT_THAT(other_conversation, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FieldsOf(other_conversation), ElementsAre("page_token"));

  absl::StatusOr<MessagePage> other_order =
      messages_.List(kUser, kConversation,
                     {.page_size = 1,
                      .page_token = asc->next_page_token,
                      .order = Order::kDescending});
  EXPECT_THAT(other_order, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FieldsOf(other_order), ElementsAre("page_token"));
}

TEST_F(MessagesTest, ATamperedPageTokenIsInvalid) {
  CreateMany(3);
  absl::StatusOr<MessagePage> page =
      messages_.List(kUser, kConversation, {.page_size = 1});
  ASSERT_OK(page);
  std::string bytes;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(page->next_page_token, &bytes));
  const std::string tampered[] = {
      "not a token!",
      page->next_page_token + "A",  // no longer base64url
      absl::WebSafeBase64Escape(bytes.substr(0, bytes.size() / 2)),  // cut
      absl::WebSafeBase64Escape("\xFF\xFF\xFF\xFF"),  // not the proto
  };
  for (const std::string& token : tampered) {
    absl::StatusOr<MessagePage> listed =
        messages_.List(kUser, kConversation, {.page_token = token});
    EXPECT_THAT(listed, StatusIs(absl::StatusCode::kInvalidArgument)) << token;
    EXPECT_THAT(FieldsOf(listed), ElementsAre("page_token")) << token;
  }
}

TEST_F(MessagesTest, APageEndsAt4MiBOfContentAndTheRestFollows) {
  // 11 messages of 400,000 bytes: ten fit 4 MiB (4,194,304 bytes), the
  // eleventh would not.
  std::vector<std::string> ids;
  for (int i = 0; i < 11; ++i) {
    absl::StatusOr<MessageRecord> m = Create(Repeat(kEmoji, 100000));
    ASSERT_OK(m);
    ids.push_back(m->id);
  }
  for (Order order : {Order::kAscending, Order::kDescending}) {
    absl::StatusOr<MessagePage> first =
        messages_.List(kUser, kConversation, {.page_size = 50, .order = order});
    ASSERT_OK(first);
    EXPECT_EQ(first->messages.size(), 10u);
    int64_t bytes = 0;
    for (const MessageRecord& m : first->messages) bytes += m.content.size();
    EXPECT_LE(bytes, kMaxPageContentBytes);
    ASSERT_NE(first->next_page_token, "");
    absl::StatusOr<MessagePage> rest =
        messages_.List(kUser, kConversation,
                       {.page_size = 50,
                        .page_token = first->next_page_token,
                        .order = order});
    ASSERT_OK(rest);
    ASSERT_EQ(rest->messages.size(), 1u);
    EXPECT_EQ(rest->messages[0].id,
              order == Order::kAscending ? ids.back() : ids.front());
    EXPECT_EQ(rest->next_page_token, "");
  }
}

// A page whose messages add up to exactly 4 MiB still says that more
// follow (storage once left out the message that tells).
TEST_F(MessagesTest, APageOfExactly4MiBStillHasANextPageToken) {
  // 10 x 400,000 + 194,304 = 4,194,304 bytes, then one more message.
  for (int i = 0; i < 10; ++i) ASSERT_OK(Create(Repeat(kEmoji, 100000)));
  ASSERT_OK(Create(Repeat(kEmoji, 194304 / 4)));
  ASSERT_OK(Create("the message after the page"));
  absl::StatusOr<MessagePage> first =
      messages_.List(kUser, kConversation, {.page_size = 50});
  ASSERT_OK(first);
  EXPECT_EQ(first->messages.size(), 11u);
  ASSERT_NE(first->next_page_token, "") << "12 messages, 11 listed";
  absl::StatusOr<MessagePage> rest =
      messages_.List(kUser, kConversation,
                     {.page_size = 50, .page_token = first->next_page_token});
  ASSERT_OK(rest);
  EXPECT_THAT(ContentsOf(rest->messages),
              ElementsAre("the message after the page"));
}

// --- Update, Delete, Clear --------------------------------------------------

TEST_F(MessagesTest, UpdateChangesOnlyTheGivenFields) {
  absl::StatusOr<MessageRecord> m =
      Create("before", "", kConversation, Role::kSystem, {{"a", "1"}});
  ASSERT_OK(m);
  clock_.Advance(absl::Minutes(1));
  const absl::Time edited_at = ToMicroseconds(clock_.Now());

  absl::StatusOr<MessageRecord> updated =
      messages_.Update(kUser, kConversation, m->id, {.content = "after"});
  ASSERT_OK(updated);
  EXPECT_EQ(updated->content, "after");
  EXPECT_EQ(updated->metadata, (Metadata{{"a", "1"}}));
  EXPECT_EQ(updated->role, Role::kSystem);
  EXPECT_EQ(updated->seq, m->seq);
  EXPECT_EQ(updated->created_at, m->created_at);
  EXPECT_EQ(updated->updated_at, edited_at);
  EXPECT_EQ(store_.Conversation(kUser, kConversation)->updated_at, edited_at)
      << "an edit bumps the conversation";

  clock_.Advance(absl::Minutes(1));
  updated = messages_.Update(kUser, kConversation, m->id,
                             {.metadata = Metadata{{"b", "2"}}});
  ASSERT_OK(updated);
  EXPECT_EQ(updated->content, "after");
  EXPECT_EQ(updated->metadata, (Metadata{{"b", "2"}})) << "replaced whole";

  absl::StatusOr<MessageRecord> read =
      messages_.Get(kUser, kConversation, m->id);
  ASSERT_OK(read);
  EXPECT_EQ(read->content, "after");
  EXPECT_EQ(read->metadata, (Metadata{{"b", "2"}}));
  EXPECT_EQ(MessageCount(), 1);
}

TEST_F(MessagesTest, AnEmptyUpdateAnswersTheMessageAsItIs) {
  absl::StatusOr<MessageRecord> m = Create("same");
  ASSERT_OK(m);
  const absl::Time conversation_updated_at =
      store_.Conversation(kUser, kConversation)->updated_at;
  clock_.Advance(absl::Minutes(1));
  absl::StatusOr<MessageRecord> unchanged =
      messages_.Update(kUser, kConversation, m->id, {});
  ASSERT_OK(unchanged);
  EXPECT_EQ(unchanged->content, "same");
  EXPECT_EQ(unchanged->updated_at, m->updated_at);
  EXPECT_EQ(store_.Conversation(kUser, kConversation)->updated_at,
            conversation_updated_at);
}

TEST_F(MessagesTest, UpdateValidatesEveryGivenField) {
  absl::StatusOr<MessageRecord> m = Create("kept");
  ASSERT_OK(m);
  absl::StatusOr<MessageRecord> updated =
      messages_.Update(kUser, kConversation, m->id,
                       {.content = std::string("a\0b", 3),
                        .metadata = Metadata{{"k", std::string(513, 'v')}}});
  EXPECT_THAT(updated, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FieldsOf(updated), UnorderedElementsAre("content", "metadata.k"));
  EXPECT_THAT(
      messages_.Update(kUser, kConversation, m->id, {.content = std::string()}),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(messages_.Get(kUser, kConversation, m->id)->content, "kept");
}

TEST_F(MessagesTest, UpdateOfAMissingMessageIsNotFound) {
  EXPECT_THAT(
      messages_.Update(kUser, kConversation, NewUuidV7(), {.content = "x"}),
      StatusIs(absl::StatusCode::kNotFound, "message not found"));
}

TEST_F(MessagesTest,
       DeleteRemovesTheMessageAndItsSubtreeAndKeepsTheCountsExact) {
  absl::StatusOr<MessageRecord> m1 = Create("1");
  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<MessageRecord> m2 = Create("2");
  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<MessageRecord> m3 = Create("3");
  ASSERT_TRUE(m1.ok() && m2.ok() && m3.ok());
  clock_.Advance(absl::Seconds(1));
  const absl::Time deleted_at = ToMicroseconds(clock_.Now());

  ASSERT_OK(messages_.Delete(kUser, kConversation, m3->id));
  EXPECT_THAT(messages_.Get(kUser, kConversation, m3->id),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(messages_.Delete(kUser, kConversation, m3->id),
              StatusIs(absl::StatusCode::kNotFound, "message not found"));
  auto conversation = store_.Conversation(kUser, kConversation);
  EXPECT_EQ(conversation->message_count, 2);
  EXPECT_EQ(conversation->last_message_at, m2->created_at)
      << "the newest remaining message's";
  EXPECT_EQ(conversation->updated_at, deleted_at);

  absl::StatusOr<MessageRecord> m4 = Create("4");
  ASSERT_OK(m4);
  EXPECT_GT(m4->seq, m3->seq) << "positions are not handed out again";
  absl::StatusOr<MessagePage> page = messages_.List(kUser, kConversation, {});
  ASSERT_OK(page);
  EXPECT_THAT(ContentsOf(page->messages), ElementsAre("1", "2", "4"));

  // The first message is the root of all the others: its subtree goes.
  ASSERT_OK(messages_.Delete(kUser, kConversation, m1->id));
  EXPECT_THAT(messages_.Get(kUser, kConversation, m4->id),
              StatusIs(absl::StatusCode::kNotFound));
  conversation = store_.Conversation(kUser, kConversation);
  EXPECT_EQ(conversation->message_count, 0);
  EXPECT_EQ(conversation->last_message_at, std::nullopt);
  EXPECT_EQ(conversation->active_leaf_id, "");
}

TEST_F(MessagesTest, ClearDeletesEveryMessageOfTheConversation) {
  CreateMany(3);
  CreateMany(2, kSecondConversation);
  clock_.Advance(absl::Minutes(5));
  ASSERT_OK(messages_.Clear(kUser, kConversation));
  absl::StatusOr<MessagePage> page = messages_.List(kUser, kConversation, {});
  ASSERT_OK(page);
  EXPECT_THAT(page->messages, IsEmpty());
  const auto conversation = store_.Conversation(kUser, kConversation);
  EXPECT_EQ(conversation->message_count, 0);
  EXPECT_EQ(conversation->last_message_at, std::nullopt);
  EXPECT_EQ(conversation->updated_at, ToMicroseconds(clock_.Now()));
  EXPECT_EQ(MessageCount(kSecondConversation), 2) << "only that conversation";
  EXPECT_OK(messages_.Clear(kUser, kConversation)) << "also when empty";
}

TEST_F(MessagesTest, TimesNeverGoBackwards) {
  absl::StatusOr<MessageRecord> first = Create("first");
  ASSERT_OK(first);
  clock_.Advance(absl::Minutes(-1));  // a clock stepped back
  absl::StatusOr<MessageRecord> second = Create("second");
  ASSERT_OK(second);
  EXPECT_GE(second->created_at, first->created_at);
  EXPECT_GT(second->seq, first->seq);
}

TEST_F(MessagesTest, ConcurrentCreatesGetDistinctPositionsAndAnExactCount) {
  constexpr int kThreads = 4;
  constexpr int kEach = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) EXPECT_OK(Create("concurrent"));
    });
  }
  for (std::thread& thread : threads) thread.join();
  const std::vector<MessageRecord> stored =
      store_.StoredMessages(kUser, kConversation);
  ASSERT_EQ(stored.size(), static_cast<size_t>(kThreads * kEach));
  for (size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(stored[i].seq, static_cast<int64_t>(i + 1));
  }
  EXPECT_EQ(MessageCount(), kThreads * kEach);
}

}  // namespace
}  // namespace chat::message
