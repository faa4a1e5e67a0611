#ifndef TESSERA_KUBE_HTTP_H_
#define TESSERA_KUBE_HTTP_H_

// HTTP over libcurl for the API client: TLS material from memory, a pool of easy handles so that
// connections are reused across calls and threads, a timeout on every call, and a streaming mode
// for watches that hands each received chunk to a callback.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "tessera/kube/config.h"

namespace tessera::kube {

struct HttpRequest {
  std::string method = "GET";
  std::string url;                   // absolute
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  std::chrono::milliseconds timeout{30000};  // whole call; for a stream: until the first byte
};

struct HttpResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
};

class HttpClient {
 public:
  explicit HttpClient(const Config& config);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // One request; a transport failure (connect, TLS, timeout) is Unavailable or DeadlineExceeded.
  absl::StatusOr<HttpResponse> Do(const HttpRequest& request);

  // A streaming request: `on_data` gets each chunk of the body as it arrives and returns false to
  // stop; `stop` (may be null) is polled at least once a second (libcurl's progress callback). The
  // status and headers are filled (the body stays empty unless the status is not 2xx, then it holds
  // the error body). The call returns when the server ends the stream, `on_data` stops it, `stop`
  // is set, or nothing arrived for `idle_timeout`.
  absl::StatusOr<HttpResponse> Stream(const HttpRequest& request,
                                      const std::function<bool(std::string_view)>& on_data,
                                      const std::atomic<bool>* stop,
                                      std::chrono::milliseconds idle_timeout);

  const Config& config() const { return config_; }

 private:
  struct Handle;
  std::unique_ptr<Handle> Acquire();
  void Release(std::unique_ptr<Handle> handle);
  void Prepare(Handle& h, const HttpRequest& request);

  const Config config_;
  std::string connect_to_;  // tls-server-name: "name:port:host:port"
  std::mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::kube

#endif  // TESSERA_KUBE_HTTP_H_
