#ifndef TESSERA_TEST_UNIT_KUBE_TEST_SERVER_H_
#define TESSERA_TEST_UNIT_KUBE_TEST_SERVER_H_

// An in-process HTTP server on a loopback port for client tests (cpp-httplib), and a Config that
// points at it.

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "tessera/kube/config.h"

namespace tessera::kube {

class TestServer {
 public:
  TestServer() = default;
  ~TestServer() { Stop(); }

  // Register handlers on server() first, then Start().
  httplib::Server& server() { return server_; }
  void Start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void Stop() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  Config config() const {
    Config c;
    c.server = url();
    c.source = "test server";
    return c;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

inline std::string StatusBody(int code, const std::string& reason, const std::string& message) {
  return R"({"kind":"Status","apiVersion":"v1","status":"Failure","code":)" + std::to_string(code) +
         R"(,"reason":")" + reason + R"(","message":")" + message + R"("})";
}

}  // namespace tessera::kube

#endif  // TESSERA_TEST_UNIT_KUBE_TEST_SERVER_H_
