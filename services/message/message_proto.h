#ifndef CHAT_SERVICES_MESSAGE_MESSAGE_PROTO_H_
#define CHAT_SERVICES_MESSAGE_MESSAGE_PROTO_H_

// A message as the contract shows it, for the message service's handlers.

#include "chat/v1/message.pb.h"
#include "services/message/messages.h"

namespace chat::message {

void ToProto(const MessageRecord& m, chat::v1::Message* out);
// The same, moving the strings (content, ids) of `m` instead of copying them:
// a listed page is converted once and then dropped.
void ToProto(MessageRecord&& m, chat::v1::Message* out);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGE_PROTO_H_
