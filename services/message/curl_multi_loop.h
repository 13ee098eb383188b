#ifndef CHAT_SERVICES_MESSAGE_CURL_MULTI_LOOP_H_
#define CHAT_SERVICES_MESSAGE_CURL_MULTI_LOOP_H_

// One thread drives every HTTP transfer of a process with libcurl's multi
// interface: curl_multi_socket_action over epoll, so that each event costs
// the work of the transfers it concerns, not of all of them. Ten thousand
// replies streaming from a provider take this one thread and their sockets.

#include <curl/curl.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace chat::message {

// One transfer; its callbacks run on the loop's thread.
class CurlTransfer {
 public:
  virtual ~CurlTransfer() = default;
  // The easy handle, set up; the transfer keeps it until Done.
  virtual CURL* easy() = 0;
  // Asked at least every tick while the transfer runs: a status other than
  // OK stops it, and Done gets that status.
  virtual absl::Status Check() = 0;
  // The end, called once and last: curl's result, and the status that
  // stopped the transfer (OK unless Check or the loop stopped it).
  virtual void Done(CURLcode code, absl::Status stopped) = 0;
};

// How transfers share connections. HTTP/2 transfers to one host share a
// connection, as many streams at once as the server allows and up to
// max_streams_per_connection; a transfer that finds every stream of every
// connection taken opens another connection, up to max_host_connections
// (0: no limit), and beyond that waits for a free stream or connection.
struct CurlMultiOptions {
  long max_host_connections = 0;
  long max_streams_per_connection = 100;  // libcurl's default
};

class CurlMultiLoop {
 public:
  // Starts the thread. `tick`: how often running transfers are Checked.
  static absl::StatusOr<std::unique_ptr<CurlMultiLoop>> Start(
      absl::Duration tick, CurlMultiOptions options = {});
  // Every transfer still running ends with Done(CANCELLED), then the thread
  // stops.
  ~CurlMultiLoop();

  // Starts a transfer; from any thread.
  void Add(std::shared_ptr<CurlTransfer> transfer);

 private:
  CurlMultiLoop(CURLM* multi, int epoll_fd, int wake_fd, absl::Duration tick,
                const CurlMultiOptions& options);
  void Run();
  void Wake();
  // Moves the transfers of Add into the multi handle; false once stopping.
  bool TakeIncoming();
  void CheckAll();
  void ReapFinished();
  // Makes libcurl send what it queued on these HTTP/2 connections
  // (ConnectionOf) for transfers that ended early.
  void FlushConnections(absl::flat_hash_set<std::string> connections);
  void EndAll(const absl::Status& why);

  static int OnSocket(CURL* easy, curl_socket_t socket, int what, void* loop,
                      void* socket_data);
  static int OnTimer(CURLM* multi, long timeout_ms, void* loop);

  CURLM* multi_;
  int epoll_fd_;
  int wake_fd_;  // an eventfd: Add and the destructor wake the thread
  absl::Duration tick_;
  std::optional<absl::Time> curl_deadline_;  // when curl wants a timeout call

  std::mutex mutex_;
  std::vector<std::shared_ptr<CurlTransfer>> incoming_;
  bool stopping_ = false;

  std::unordered_map<CURL*, std::shared_ptr<CurlTransfer>> running_;
  std::thread thread_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_CURL_MULTI_LOOP_H_
