#include "tessera/tools/http_endpoints.h"

#include <algorithm>
#include <cstdlib>

#include "httplib.h"
#include "spdlog/spdlog.h"
#include "tessera/api/strings.h"

namespace tessera::tools {

struct HttpEndpoints::Server {
  httplib::Server http;
  std::thread thread;
};

HttpEndpoints::HttpEndpoints() = default;

HttpEndpoints::~HttpEndpoints() {
  for (auto& s : servers_) s->http.stop();
  for (auto& s : servers_) {
    if (s->thread.joinable()) s->thread.join();
  }
}

void HttpEndpoints::Handle(std::string path, Handler handler) {
  handlers_.emplace_back(std::move(path), std::move(handler));
}

absl::Status HttpEndpoints::Listen(const std::vector<std::string>& addresses) {
  std::vector<std::string> done;
  for (const std::string& a : addresses) {
    if (std::find(done.begin(), done.end(), a) != done.end()) continue;
    if (absl::Status s = Listen(a); !s.ok()) return s;
    done.push_back(a);
  }
  return absl::OkStatus();
}

absl::Status HttpEndpoints::Listen(const std::string& address) {
  if (address.empty() || address == "0") return absl::OkStatus();
  const std::size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(StrCat("address \"", address, "\" is not [host]:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.empty()) host = "0.0.0.0";
  const std::string port_text = address.substr(colon + 1);
  const int port = std::atoi(port_text.c_str());
  if (port_text.empty() || port < 0 || port > 65535 ||
      port_text.find_first_not_of("0123456789") != std::string::npos) {
    return absl::InvalidArgumentError(StrCat("address \"", address, "\": bad port"));
  }
  auto s = std::make_unique<Server>();
  std::string paths;
  for (const auto& [path, handler] : handlers_) {
    Handler h = handler;
    s->http.Get(path, [h](const httplib::Request&, httplib::Response& res) {
      HttpReply r = h();
      res.status = r.status;
      res.set_content(std::move(r.body), r.content_type);
    });
    paths += paths.empty() ? path : StrCat(", ", path);
  }
  const int bound =
      port == 0 ? s->http.bind_to_any_port(host) : (s->http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) return absl::UnavailableError(StrCat("cannot listen on ", address));
  spdlog::info("serving {} on {}:{}", paths, host, bound);
  httplib::Server* raw = &s->http;
  s->thread = std::thread([raw] { raw->listen_after_bind(); });
  servers_.push_back(std::move(s));
  ports_.push_back(bound);
  return absl::OkStatus();
}

}  // namespace tessera::tools
