#include "tessera/kube/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "tessera/api/strings.h"
#include "tessera/api/yaml.h"

namespace tessera::kube {
namespace {

using api::Json;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot read ", path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return base_dir + "/" + path;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// The named entry of a kubeconfig list ("clusters", "contexts", "users"): [{name, <kind>: {...}}].
absl::StatusOr<Json> Named(const Json& doc, const char* list, const char* kind,
                           const std::string& name, const std::string& source) {
  if (doc.contains(list) && doc[list].is_array()) {
    for (const Json& entry : doc[list]) {
      if (entry.is_object() && entry.value("name", "") == name) {
        if (!entry.contains(kind) || !entry[kind].is_object()) {
          return absl::InvalidArgumentError(
              StrCat(source, ": ", list, "[", name, "].", kind, " is missing"));
        }
        return entry[kind];
      }
    }
  }
  return absl::InvalidArgumentError(StrCat(source, ": no entry \"", name, "\" in ", list));
}

// Text from "<key>-data" (base64) or the file named by "<key>"; empty if neither is set.
absl::StatusOr<std::string> Material(const Json& obj, const std::string& key,
                                     const std::string& base_dir, const std::string& where) {
  const std::string data_key = key + "-data";
  if (obj.contains(data_key)) {
    if (!obj[data_key].is_string())
      return absl::InvalidArgumentError(StrCat(where, ".", data_key, " is not a string"));
    std::string decoded;
    if (!absl::Base64Unescape(obj[data_key].get<std::string>(), &decoded)) {
      return absl::InvalidArgumentError(StrCat(where, ".", data_key, " is not valid base64"));
    }
    return decoded;
  }
  if (obj.contains(key)) {
    if (!obj[key].is_string())
      return absl::InvalidArgumentError(StrCat(where, ".", key, " is not a string"));
    const std::string path = Resolve(base_dir, obj[key].get<std::string>());
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok())
      return absl::InvalidArgumentError(StrCat(where, ".", key, ": ", text.status().message()));
    return *text;
  }
  return std::string();
}

absl::StatusOr<std::string> OptionalString(const Json& obj, const char* key,
                                           const std::string& where) {
  if (!obj.contains(key)) return std::string();
  if (!obj[key].is_string())
    return absl::InvalidArgumentError(StrCat(where, ".", key, " is not a string"));
  return obj[key].get<std::string>();
}

}  // namespace

std::shared_ptr<TokenSource> TokenSource::Static(std::string token) {
  return std::shared_ptr<TokenSource>(
      new TokenSource(std::move(token), "", std::chrono::seconds(0)));
}

std::shared_ptr<TokenSource> TokenSource::File(std::string path, std::chrono::seconds refresh) {
  return std::shared_ptr<TokenSource>(new TokenSource("", std::move(path), refresh));
}

std::string TokenSource::Token() {
  std::lock_guard<std::mutex> lock(mu_);
  if (path_.empty()) return token_;
  const auto now = std::chrono::steady_clock::now();
  if (stale_ || now - read_at_ >= refresh_) {
    absl::StatusOr<std::string> text = ReadFile(path_);
    if (text.ok()) token_ = Trimmed(*text);  // keep the last good token if the file is mid-rewrite
    read_at_ = now;
    stale_ = false;
  }
  return token_;
}

void TokenSource::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  stale_ = true;
}

absl::StatusOr<Config> ParseKubeconfig(std::string_view yaml, const std::string& base_dir,
                                       std::string_view context, const std::string& source) {
  absl::StatusOr<Json> parsed = api::ParseYaml(yaml);
  if (!parsed.ok())
    return absl::InvalidArgumentError(StrCat(source, ": ", parsed.status().message()));
  const Json& doc = *parsed;
  if (!doc.is_object())
    return absl::InvalidArgumentError(StrCat(source, ": not a kubeconfig (expected a mapping)"));
  std::string context_name(context);
  if (context_name.empty()) {
    absl::StatusOr<std::string> current = OptionalString(doc, "current-context", source);
    if (!current.ok()) return current.status();
    context_name = *current;
  }
  if (context_name.empty())
    return absl::InvalidArgumentError(StrCat(source, ": current-context is not set"));
  absl::StatusOr<Json> ctx = Named(doc, "contexts", "context", context_name, source);
  if (!ctx.ok()) return ctx.status();
  Config config;
  config.source = StrCat("kubeconfig ", source, " (context ", context_name, ")");
  const std::string cluster_name = ctx->value("cluster", "");
  const std::string user_name = ctx->value("user", "");
  if (ctx->contains("namespace") && (*ctx)["namespace"].is_string())
    config.namespace_ = (*ctx)["namespace"];

  absl::StatusOr<Json> cluster = Named(doc, "clusters", "cluster", cluster_name, source);
  if (!cluster.ok()) return cluster.status();
  const std::string cwhere = StrCat(source, ": clusters[", cluster_name, "].cluster");
  absl::StatusOr<std::string> server = OptionalString(*cluster, "server", cwhere);
  if (!server.ok()) return server.status();
  if (server->empty()) return absl::InvalidArgumentError(StrCat(cwhere, ".server is not set"));
  if (server->rfind("https://", 0) != 0 && server->rfind("http://", 0) != 0) {
    return absl::InvalidArgumentError(
        StrCat(cwhere, ".server \"", *server, "\" is not an http(s) URL"));
  }
  config.server = *server;
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  absl::StatusOr<std::string> ca = Material(*cluster, "certificate-authority", base_dir, cwhere);
  if (!ca.ok()) return ca.status();
  config.ca_pem = *ca;
  if (cluster->contains("insecure-skip-tls-verify")) {
    if (!(*cluster)["insecure-skip-tls-verify"].is_boolean()) {
      return absl::InvalidArgumentError(
          StrCat(cwhere, ".insecure-skip-tls-verify is not a boolean"));
    }
    config.insecure_skip_tls_verify = (*cluster)["insecure-skip-tls-verify"];
  }
  absl::StatusOr<std::string> tls_name = OptionalString(*cluster, "tls-server-name", cwhere);
  if (!tls_name.ok()) return tls_name.status();
  config.tls_server_name = *tls_name;
  if (cluster->contains("proxy-url"))
    return absl::UnimplementedError(StrCat(cwhere, ".proxy-url is not supported"));

  if (user_name.empty()) return config;  // anonymous
  absl::StatusOr<Json> user = Named(doc, "users", "user", user_name, source);
  if (!user.ok()) return user.status();
  const std::string uwhere = StrCat(source, ": users[", user_name, "].user");
  if (user->contains("exec")) {
    return absl::UnimplementedError(
        StrCat(uwhere,
               ".exec: exec credential plugins are not supported; use a "
               "client certificate, token or tokenFile"));
  }
  if (user->contains("auth-provider")) {
    return absl::UnimplementedError(
        StrCat(uwhere,
               ".auth-provider: auth provider plugins are not supported; use a "
               "client certificate, token or tokenFile"));
  }
  for (const char* unsupported :
       {"username", "password", "as", "as-groups", "as-uid", "as-user-extra"}) {
    if (user->contains(unsupported)) {
      return absl::UnimplementedError(StrCat(uwhere, ".", unsupported, " is not supported"));
    }
  }
  absl::StatusOr<std::string> cert = Material(*user, "client-certificate", base_dir, uwhere);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = Material(*user, "client-key", base_dir, uwhere);
  if (!key.ok()) return key.status();
  if (cert->empty() != key->empty()) {
    return absl::InvalidArgumentError(
        StrCat(uwhere, ": client-certificate and client-key must be set together"));
  }
  config.client_cert_pem = *cert;
  config.client_key_pem = *key;
  absl::StatusOr<std::string> token = OptionalString(*user, "token", uwhere);
  if (!token.ok()) return token.status();
  absl::StatusOr<std::string> token_file = OptionalString(*user, "tokenFile", uwhere);
  if (!token_file.ok()) return token_file.status();
  if (!token->empty()) {
    config.token = TokenSource::Static(*token);
  } else if (!token_file->empty()) {
    const std::string path = Resolve(base_dir, *token_file);
    if (!ReadFile(path).ok())
      return absl::InvalidArgumentError(StrCat(uwhere, ".tokenFile: cannot read ", path));
    config.token = TokenSource::File(path);
  }
  return config;
}

absl::StatusOr<Config> LoadKubeconfig(const std::string& path, std::string_view context) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return absl::NotFoundError(StrCat("kubeconfig: ", text.status().message()));
  const std::size_t slash = path.rfind('/');
  return ParseKubeconfig(*text, slash == std::string::npos ? "." : path.substr(0, slash), context,
                         path);
}

absl::StatusOr<Config> InClusterConfig(const std::string& dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') {
    return absl::FailedPreconditionError(
        "not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset) and no --kubeconfig or "
        "KUBECONFIG given");
  }
  Config config;
  const std::string h = host;
  config.server =
      StrCat("https://", h.find(':') != std::string::npos ? StrCat("[", h, "]") : h, ":", port);
  absl::StatusOr<std::string> ca = ReadFile(dir + "/ca.crt");
  if (!ca.ok())
    return absl::FailedPreconditionError(StrCat("in-cluster config: ", ca.status().message()));
  config.ca_pem = *ca;
  const std::string token_path = dir + "/token";
  if (!ReadFile(token_path).ok())
    return absl::FailedPreconditionError(StrCat("in-cluster config: cannot read ", token_path));
  config.token = TokenSource::File(token_path);
  if (absl::StatusOr<std::string> ns = ReadFile(dir + "/namespace");
      ns.ok() && !Trimmed(*ns).empty()) {
    config.namespace_ = Trimmed(*ns);
  }
  config.source = StrCat("in-cluster service account (", dir, ")");
  return config;
}

absl::StatusOr<Config> ResolveConfig(const std::string& kubeconfig_flag, std::string_view context) {
  if (!kubeconfig_flag.empty()) return LoadKubeconfig(kubeconfig_flag, context);
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    std::string first(env);
    first = first.substr(0, first.find(':'));
    return LoadKubeconfig(first, context);
  }
  return InClusterConfig();
}

}  // namespace tessera::kube
