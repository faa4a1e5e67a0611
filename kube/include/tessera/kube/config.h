#ifndef TESSERA_KUBE_CONFIG_H_
#define TESSERA_KUBE_CONFIG_H_

// Where the API server is and how to authenticate to it: a kubeconfig file (current context,
// cluster server and CA, client certificate and key, bearer token or token file,
// insecure-skip-tls-verify, tls-server-name) or the in-cluster service account. TLS material stays
// in memory (libcurl blobs); nothing is written to disk.
//
// Resolution order for binaries (ResolveConfig): the --kubeconfig flag, then $KUBECONFIG (first
// entry of a colon-separated list), then the in-cluster service account. Every unsupported or
// broken entry is an error that names the file and the field (exec and auth-provider users
// included).

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"

namespace tessera::kube {

// A bearer token that may live in a file the kubelet rewrites (bound service-account tokens expire
// after about an hour): the file is re-read at most every `refresh` and whenever the server
// answered 401. Thread-safe.
class TokenSource {
 public:
  static std::shared_ptr<TokenSource> Static(std::string token);
  static std::shared_ptr<TokenSource> File(std::string path,
                                           std::chrono::seconds refresh = std::chrono::seconds(60));

  // The current token; empty if none could be read (the error is kept for the 401 message).
  std::string Token();
  // The server refused the token: read the file again on the next call.
  void Invalidate();
  const std::string& path() const { return path_; }

 private:
  TokenSource(std::string token, std::string path, std::chrono::seconds refresh)
      : path_(std::move(path)), refresh_(refresh), token_(std::move(token)) {}

  const std::string path_;  // empty: static token
  const std::chrono::seconds refresh_;
  std::mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point read_at_ ABSL_GUARDED_BY(mu_){};
  bool stale_ ABSL_GUARDED_BY(mu_) = true;
};

struct Config {
  std::string server;           // "https://10.0.0.1:6443" (no trailing slash)
  std::string ca_pem;           // empty: the system trust store
  std::string client_cert_pem;  // client certificate authentication
  std::string client_key_pem;
  std::shared_ptr<TokenSource> token;  // bearer token authentication; null: none
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;  // overrides the name checked in the server certificate
  std::string namespace_ = "default";
  std::string source;  // where this came from, for messages ("kubeconfig /x (context a)")
};

// The kubeconfig at `path`; `context` overrides current-context when not empty.
absl::StatusOr<Config> LoadKubeconfig(const std::string& path, std::string_view context = {});
// A kubeconfig from text; relative file paths resolve against `base_dir`.
absl::StatusOr<Config> ParseKubeconfig(std::string_view yaml, const std::string& base_dir,
                                       std::string_view context, const std::string& source);

// The pod's service account: $KUBERNETES_SERVICE_HOST/PORT and the files in `dir` (token, ca.crt,
// namespace). IPv6 hosts get brackets.
inline constexpr std::string_view kServiceAccountDir =
    "/var/run/secrets/kubernetes.io/serviceaccount";
absl::StatusOr<Config> InClusterConfig(const std::string& dir = std::string(kServiceAccountDir));

// --kubeconfig flag, else $KUBECONFIG, else in-cluster.
absl::StatusOr<Config> ResolveConfig(const std::string& kubeconfig_flag,
                                     std::string_view context = {});

}  // namespace tessera::kube

#endif  // TESSERA_KUBE_CONFIG_H_
