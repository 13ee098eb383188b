#ifndef CHAT_SERVICES_MESSAGE_TRANSFER_HANDLER_H_
#define CHAT_SERVICES_MESSAGE_TRANSFER_HANDLER_H_

// chat.v1.ExportService over gRPC: authenticates the caller, turns the
// streams into Transfers' sinks and sources, maps the result. Both calls
// use the synchronous API: each holds a thread of the server for its
// length, and Transfers bounds how many run at once.

#include "chat/v1/export.grpc.pb.h"
#include "common/caller.h"
#include "services/message/transfers.h"

namespace chat::message {

class ExportServiceImpl final : public chat::v1::ExportService::Service {
 public:
  ExportServiceImpl(Transfers* transfers, const CallerResolver* callers)
      : transfers_(transfers), callers_(callers) {}

  grpc::Status Export(
      grpc::ServerContext* context, const chat::v1::ExportRequest* request,
      grpc::ServerWriter<chat::v1::ExportChunk>* writer) override;
  grpc::Status Import(grpc::ServerContext* context,
                      grpc::ServerReader<chat::v1::ImportRequest>* reader,
                      chat::v1::ImportResponse* response) override;

 private:
  Transfers* transfers_;
  const CallerResolver* callers_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_TRANSFER_HANDLER_H_
