#include "services/message/curl_multi_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace chat::message {
namespace {

constexpr int kMaxEvents = 256;

// The HTTP/2 connection of a transfer, as its peer and local address ("" if
// it has none). A transfer that ends early on HTTP/2 leaves a RST_STREAM
// that libcurl 7.88 queues until its connection next writes, which on a
// quiet connection may be never: the provider would go on with the request
// (FlushConnections).
std::string Http2ConnectionOf(CURL* easy) {
  long version = 0, local_port = 0, primary_port = 0;
  char* primary_ip = nullptr;
  curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(easy, CURLINFO_LOCAL_PORT, &local_port);
  if (version != CURL_HTTP_VERSION_2_0 || local_port == 0) return "";
  curl_easy_getinfo(easy, CURLINFO_PRIMARY_IP, &primary_ip);
  curl_easy_getinfo(easy, CURLINFO_PRIMARY_PORT, &primary_port);
  return absl::StrCat(primary_ip == nullptr ? "" : primary_ip, " ",
                      primary_port, " ", local_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<CurlMultiLoop>> CurlMultiLoop::Start(
    absl::Duration tick, CurlMultiOptions options) {
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return absl::InternalError("epoll_create1 failed");
  const int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    close(epoll_fd);
    return absl::InternalError("eventfd failed");
  }
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.fd = wake_fd;
  CURLM* multi = curl_multi_init();
  if (multi == nullptr ||
      epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &wake) != 0) {
    if (multi != nullptr) curl_multi_cleanup(multi);
    close(wake_fd);
    close(epoll_fd);
    return absl::InternalError("cannot set up the HTTP loop");
  }
  return std::unique_ptr<CurlMultiLoop>(
      new CurlMultiLoop(multi, epoll_fd, wake_fd, tick, options));
}

CurlMultiLoop::CurlMultiLoop(CURLM* multi, int epoll_fd, int wake_fd,
                             absl::Duration tick,
                             const CurlMultiOptions& options)
    : multi_(multi), epoll_fd_(epoll_fd), wake_fd_(wake_fd), tick_(tick) {
  // Many transfers on one HTTP/2 connection: its TLS session, buffers and
  // socket are paid once, not once per transfer (BENCHMARKS.md).
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(multi_, CURLMOPT_MAX_CONCURRENT_STREAMS,
                    options.max_streams_per_connection);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                    options.max_host_connections);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlMultiLoop::OnSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlMultiLoop::OnTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  thread_ = std::thread([this] { Run(); });
}

CurlMultiLoop::~CurlMultiLoop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  Wake();
  thread_.join();
  curl_multi_cleanup(multi_);
  close(wake_fd_);
  close(epoll_fd_);
}

void CurlMultiLoop::Add(std::shared_ptr<CurlTransfer> transfer) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    incoming_.push_back(std::move(transfer));
  }
  Wake();
}

void CurlMultiLoop::Wake() {
  const uint64_t one = 1;
  // A full counter already means "wake up"; nothing else can fail here.
  (void)!write(wake_fd_, &one, sizeof one);
}

int CurlMultiLoop::OnSocket(CURL*, curl_socket_t socket, int what, void* loop,
                            void*) {
  CurlMultiLoop& self = *static_cast<CurlMultiLoop*>(loop);
  if (what == CURL_POLL_REMOVE) {
    // curl may have closed the socket already; that removed it as well.
    epoll_ctl(self.epoll_fd_, EPOLL_CTL_DEL, socket, nullptr);
    return 0;
  }
  epoll_event event{};
  event.events = ((what & CURL_POLL_IN) ? uint32_t{EPOLLIN} : 0u) |
                 ((what & CURL_POLL_OUT) ? uint32_t{EPOLLOUT} : 0u);
  event.data.fd = socket;
  if (epoll_ctl(self.epoll_fd_, EPOLL_CTL_MOD, socket, &event) != 0 &&
      errno == ENOENT &&
      epoll_ctl(self.epoll_fd_, EPOLL_CTL_ADD, socket, &event) != 0) {
    log::Warn("cannot watch a provider connection",
              {{"errno", absl::StrCat(errno)}});
    return -1;
  }
  return 0;
}

int CurlMultiLoop::OnTimer(CURLM*, long timeout_ms, void* loop) {
  CurlMultiLoop& self = *static_cast<CurlMultiLoop*>(loop);
  if (timeout_ms < 0) {
    self.curl_deadline_.reset();
  } else {
    self.curl_deadline_ = absl::Now() + absl::Milliseconds(timeout_ms);
  }
  return 0;
}

bool CurlMultiLoop::TakeIncoming() {
  std::vector<std::shared_ptr<CurlTransfer>> incoming;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return false;
    incoming.swap(incoming_);
  }
  for (std::shared_ptr<CurlTransfer>& transfer : incoming) {
    CURL* easy = transfer->easy();
    const CURLMcode added = curl_multi_add_handle(multi_, easy);
    if (added != CURLM_OK) {
      transfer->Done(CURLE_FAILED_INIT,
                     absl::UnavailableError(curl_multi_strerror(added)));
      continue;
    }
    running_[easy] = std::move(transfer);
  }
  return true;
}

void CurlMultiLoop::CheckAll() {
  std::vector<std::pair<CURL*, absl::Status>> stopped;
  for (auto& [easy, transfer] : running_) {
    absl::Status status = transfer->Check();
    if (!status.ok()) stopped.emplace_back(easy, std::move(status));
  }
  absl::flat_hash_set<std::string> connections;
  for (auto& [easy, status] : stopped) {
    auto it = running_.find(easy);
    std::shared_ptr<CurlTransfer> transfer = std::move(it->second);
    running_.erase(it);
    std::string connection = Http2ConnectionOf(easy);
    if (!connection.empty()) connections.insert(std::move(connection));
    // A connection that no other transfer shares then closes, so that the
    // server learns at once that the request is gone (as HTTP/1.1 always
    // does when a transfer stops early).
    curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
    curl_multi_remove_handle(multi_, easy);
    transfer->Done(CURLE_ABORTED_BY_CALLBACK, std::move(status));
  }
  if (!connections.empty()) FlushConnections(std::move(connections));
}

void CurlMultiLoop::FlushConnections(
    absl::flat_hash_set<std::string> connections) {
  // Resuming a transfer makes libcurl 7.88 send what its HTTP/2 connection
  // queued (the stream resets of transfers removed from it); one transfer
  // per connection is enough. Pausing first makes the resume one.
  for (const auto& [easy, transfer] : running_) {
    if (connections.empty()) return;
    if (connections.erase(Http2ConnectionOf(easy)) == 0) continue;
    curl_easy_pause(easy, CURLPAUSE_RECV);
    curl_easy_pause(easy, CURLPAUSE_CONT);
  }
}

void CurlMultiLoop::ReapFinished() {
  int left = 0;
  absl::flat_hash_set<std::string> connections;
  while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
    if (message->msg != CURLMSG_DONE) continue;
    // The message dies with remove_handle: copy it first.
    CURL* easy = message->easy_handle;
    const CURLcode code = message->data.result;
    if (code != CURLE_OK) {
      // Ended early by libcurl (a write callback's refusal, its timeout):
      // the stream's reset waits on the connection like a stopped one's.
      std::string connection = Http2ConnectionOf(easy);
      if (!connection.empty()) connections.insert(std::move(connection));
    }
    curl_multi_remove_handle(multi_, easy);
    auto it = running_.find(easy);
    if (it == running_.end()) continue;
    std::shared_ptr<CurlTransfer> transfer = std::move(it->second);
    running_.erase(it);
    transfer->Done(code, absl::OkStatus());
  }
  if (!connections.empty()) FlushConnections(std::move(connections));
}

void CurlMultiLoop::EndAll(const absl::Status& why) {
  std::vector<std::shared_ptr<CurlTransfer>> ending;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ending.swap(incoming_);
  }
  for (auto& [easy, transfer] : running_) {
    curl_multi_remove_handle(multi_, easy);
    ending.push_back(std::move(transfer));
  }
  running_.clear();
  for (std::shared_ptr<CurlTransfer>& transfer : ending) {
    transfer->Done(CURLE_ABORTED_BY_CALLBACK, why);
  }
}

void CurlMultiLoop::Run() {
  epoll_event events[kMaxEvents];
  absl::Time next_tick = absl::Now() + tick_;
  int still_running = 0;
  while (TakeIncoming()) {
    absl::Time wake_at = next_tick;
    if (curl_deadline_) wake_at = std::min(wake_at, *curl_deadline_);
    const int wait_ms = static_cast<int>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(
                                wake_at - absl::Now(), absl::Milliseconds(1))),
                            0, 1000));
    const int ready = epoll_wait(epoll_fd_, events, kMaxEvents, wait_ms);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t count;
        (void)!read(wake_fd_, &count, sizeof count);
        continue;
      }
      const uint32_t e = events[i].events;
      const int flags = ((e & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                        ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                        ((e & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
      curl_multi_socket_action(multi_, fd, flags, &still_running);
    }
    const absl::Time now = absl::Now();
    if (curl_deadline_ && *curl_deadline_ <= now) {
      curl_deadline_.reset();  // the call below may set the next one
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &still_running);
    }
    ReapFinished();
    if (now >= next_tick) {
      CheckAll();
      next_tick = now + tick_;
    }
  }
  EndAll(absl::CancelledError("the service is stopping"));
}

}  // namespace chat::message
