// Small HTTP servers for a binary's /metrics, /healthz and /readyz, one per address flag. An
// address is "[host]:port" (":8080" listens on every interface, port 0 picks a free one) or "0"
// (or empty) for off, as Kubernetes components spell it.
#ifndef TESSERA_TOOLS_HTTP_ENDPOINTS_H_
#define TESSERA_TOOLS_HTTP_ENDPOINTS_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace tessera::tools {

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain";
};

class HttpEndpoints {
 public:
  using Handler = std::function<HttpReply()>;
  HttpEndpoints();
  ~HttpEndpoints();  // stops every server
  HttpEndpoints(const HttpEndpoints&) = delete;
  HttpEndpoints& operator=(const HttpEndpoints&) = delete;

  // REQUIRES: before the first Listen.
  void Handle(std::string path, Handler handler);
  // Serves every handler on `address` from a thread of its own. Errors name the address.
  absl::Status Listen(const std::string& address);
  // Listen on each address once (a binary's --metrics-address and --health-address may be equal).
  absl::Status Listen(const std::vector<std::string>& addresses);
  // The ports bound so far, in Listen order (for port 0).
  const std::vector<int>& ports() const { return ports_; }

 private:
  struct Server;
  std::vector<std::pair<std::string, Handler>> handlers_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<int> ports_;
};

}  // namespace tessera::tools

#endif  // TESSERA_TOOLS_HTTP_ENDPOINTS_H_
