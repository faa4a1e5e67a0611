#include "tessera/kube/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "tessera/api/strings.h"

namespace tessera::kube {
namespace {

// libcurl's global state, initialised once before the first handle.
void GlobalInit() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)done;
}

struct Url {
  std::string scheme, host, port, rest;
};

Url SplitUrl(const std::string& url) {
  Url u;
  const std::size_t colon = url.find("://");
  u.scheme = url.substr(0, colon);
  std::string after = url.substr(colon + 3);
  const std::size_t slash = after.find('/');
  std::string hostport = after.substr(0, slash);
  u.rest = slash == std::string::npos ? "" : after.substr(slash);
  const std::size_t bracket = hostport.rfind(']');
  const std::size_t port_colon = hostport.rfind(':');
  if (port_colon != std::string::npos && (bracket == std::string::npos || port_colon > bracket)) {
    u.host = hostport.substr(0, port_colon);
    u.port = hostport.substr(port_colon + 1);
  } else {
    u.host = hostport;
    u.port = u.scheme == "https" ? "443" : "80";
  }
  return u;
}

curl_blob Blob(const std::string& pem) {
  return curl_blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_NOCOPY};
}

}  // namespace

struct HttpClient::Handle {
  CURL* curl = curl_easy_init();
  curl_slist* headers = nullptr;
  curl_slist* connect_to = nullptr;
  char error[CURL_ERROR_SIZE] = {};
  ~Handle() {
    curl_slist_free_all(headers);
    curl_slist_free_all(connect_to);
    curl_easy_cleanup(curl);
  }
};

HttpClient::HttpClient(const Config& config) : config_(config) {
  GlobalInit();
  if (!config_.tls_server_name.empty()) {
    const Url u = SplitUrl(config_.server);
    connect_to_ = StrCat(config_.tls_server_name, ":", u.port, ":", u.host, ":", u.port);
  }
}

HttpClient::~HttpClient() = default;

std::unique_ptr<HttpClient::Handle> HttpClient::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Handle> h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  return std::make_unique<Handle>();
}

void HttpClient::Release(std::unique_ptr<Handle> handle) {
  std::lock_guard<std::mutex> lock(mu_);
  // Enough for a burst of concurrent prepares (each keeps its connection for the next).
  if (idle_.size() < 64) idle_.push_back(std::move(handle));
}

void HttpClient::Prepare(Handle& h, const HttpRequest& request) {
  CURL* c = h.curl;
  curl_easy_reset(c);  // keeps the connection cache
  std::string url = request.url;
  if (!connect_to_.empty()) {
    // tls-server-name: address the server by that name and connect to the real host.
    const Url u = SplitUrl(url);
    url = StrCat(u.scheme, "://", config_.tls_server_name, ":", u.port, u.rest);
  }
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h.error);
  h.error[0] = '\0';
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // gzip if the server offers it
  if (request.method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }
  curl_slist_free_all(h.headers);
  h.headers = nullptr;
  for (const std::string& header : request.headers)
    h.headers = curl_slist_append(h.headers, header.c_str());
  h.headers = curl_slist_append(h.headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h.headers);
  if (!connect_to_.empty()) {
    if (h.connect_to == nullptr) h.connect_to = curl_slist_append(nullptr, connect_to_.c_str());
    curl_easy_setopt(c, CURLOPT_CONNECT_TO, h.connect_to);
  }
  if (!config_.ca_pem.empty()) {
    curl_blob ca = Blob(config_.ca_pem);
    curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
  }
  if (!config_.client_cert_pem.empty()) {
    curl_blob cert = Blob(config_.client_cert_pem);
    curl_blob key = Blob(config_.client_key_pem);
    curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
  }
  if (config_.insecure_skip_tls_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

namespace {

struct Sink {
  HttpResponse* response = nullptr;
  const std::function<bool(std::string_view)>* on_data = nullptr;
  const std::atomic<bool>* stop = nullptr;
  bool stopped = false;
  std::chrono::steady_clock::time_point last_data = std::chrono::steady_clock::now();
  std::chrono::milliseconds idle_timeout{0};
  bool idle = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (redirect, 100): its status decides how OnBody treats the body that follows.
    sink->response->headers.clear();
    const std::size_t sp = line.find(' ');
    if (sp != std::string::npos) sink->response->status = std::atoi(line.substr(sp + 1, 3).c_str());
    return size * n;
  }
  const std::size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ')) value.erase(value.begin());
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.pop_back();
    sink->response->headers[name] = value;
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  sink->last_data = std::chrono::steady_clock::now();
  const std::string_view chunk(data, size * n);
  if (sink->on_data != nullptr && sink->response->status / 100 == 2) {
    if (!(*sink->on_data)(chunk)) {
      sink->stopped = true;
      return 0;  // aborts the transfer
    }
    return size * n;
  }
  sink->response->body.append(chunk);
  return size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* sink = static_cast<Sink*>(user);
  if (sink->stop != nullptr && sink->stop->load()) {
    sink->stopped = true;
    return 1;
  }
  if (sink->idle_timeout.count() > 0 &&
      std::chrono::steady_clock::now() - sink->last_data > sink->idle_timeout) {
    sink->idle = true;
    return 1;
  }
  return 0;
}

}  // namespace

absl::StatusOr<HttpResponse> HttpClient::Do(const HttpRequest& request) {
  std::unique_ptr<Handle> h = Acquire();
  Prepare(*h, request);
  HttpResponse response;
  Sink sink{.response = &response};
  curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, &sink);
  curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &sink);
  const CURLcode rc = curl_easy_perform(h->curl);
  long status = 0;
  curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  const std::string error = h->error[0] != '\0' ? h->error : curl_easy_strerror(rc);
  if (rc != CURLE_OK) {
    // The handle may hold a broken connection: drop it rather than reuse it.
    const std::string what = StrCat(request.method, " ", request.url, ": ", error);
    if (rc == CURLE_OPERATION_TIMEDOUT) return absl::DeadlineExceededError(what);
    return absl::UnavailableError(what);
  }
  Release(std::move(h));
  return response;
}

absl::StatusOr<HttpResponse> HttpClient::Stream(
    const HttpRequest& request, const std::function<bool(std::string_view)>& on_data,
    const std::atomic<bool>* stop, std::chrono::milliseconds idle_timeout) {
  std::unique_ptr<Handle> h = Acquire();
  Prepare(*h, request);
  HttpResponse response;
  Sink sink{.response = &response, .on_data = &on_data, .stop = stop, .idle_timeout = idle_timeout};
  curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, &sink);
  curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h->curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h->curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(h->curl, CURLOPT_XFERINFODATA, &sink);
  const CURLcode rc = curl_easy_perform(h->curl);
  long status = 0;
  curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0) response.status = static_cast<int>(status);
  if (rc == CURLE_OK) {
    Release(std::move(h));
    return response;
  }
  if (sink.stopped) return response;  // we ended it
  const std::string what =
      StrCat(request.method, " ", request.url, ": ",
             sink.idle ? "no data for " + std::to_string(idle_timeout.count()) + " ms"
                       : (h->error[0] != '\0' ? std::string(h->error) : curl_easy_strerror(rc)));
  if (sink.idle || rc == CURLE_OPERATION_TIMEDOUT) return absl::DeadlineExceededError(what);
  return absl::UnavailableError(what);
}

}  // namespace tessera::kube
