#include "tessera/kube/client.h"

#include <cctype>
#include <thread>

#include "absl/strings/numbers.h"
#include "tessera/api/strings.h"
#include "tessera/kube/errors.h"

namespace tessera::kube {

namespace resources {
const ResourceType kNodes{"", "v1", "nodes", "Node", false};
const ResourceType kPods{"", "v1", "pods", "Pod", true};
const ResourceType kEvents{"", "v1", "events", "Event", true};
const ResourceType kNamespaces{"", "v1", "namespaces", "Namespace", false};
const ResourceType kLeases{"coordination.k8s.io", "v1", "leases", "Lease", true};
const ResourceType kResourceSlices{"resource.k8s.io", "v1", "resourceslices", "ResourceSlice",
                                   false};
const ResourceType kResourceClaims{"resource.k8s.io", "v1", "resourceclaims", "ResourceClaim",
                                   true};
const ResourceType kDeviceClasses{"resource.k8s.io", "v1", "deviceclasses", "DeviceClass", false};
const ResourceType kGpuInventories{"tessera.dev", "v1alpha1", "gpuinventories", "GpuInventory",
                                   false};
const ResourceType kGpuPartitionPolicies{"tessera.dev", "v1alpha1", "gpupartitionpolicies",
                                         "GpuPartitionPolicy", false};
}  // namespace resources

namespace {

using api::Json;

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

void AddParam(std::string* query, std::string_view key, std::string_view value) {
  if (value.empty()) return;
  *query += query->empty() ? "?" : "&";
  *query += StrCat(key, "=", UrlEncode(value));
}

std::string WriteQuery(const WriteOptions& options) {
  std::string q;
  if (options.dry_run) AddParam(&q, "dryRun", "All");
  if (options.strict_field_validation) AddParam(&q, "fieldValidation", "Strict");
  if (!options.field_manager.empty()) AddParam(&q, "fieldManager", options.field_manager);
  return q;
}

bool IsJsonSpace(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// The end of the string whose opening quote is at `i`: the index after its closing quote.
std::size_t StringEnd(std::string_view json, std::size_t i) {
  for (++i; i < json.size(); ++i) {
    if (json[i] == '\\') {
      ++i;
    } else if (json[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// The end of the JSON value starting at `i` (after any space): the index after it.
std::size_t ValueEnd(std::string_view json, std::size_t i) {
  int depth = 0;
  while (i < json.size()) {
    const char c = json[i];
    if (c == '"') {
      i = StringEnd(json, i);
      if (i == std::string_view::npos) return i;
      if (depth == 0) return i;
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return i;  // a scalar ended by its container
      if (--depth == 0) return i + 1;
    } else if (c == ',' && depth == 0) {
      return i;
    }
    ++i;
  }
  return std::string_view::npos;
}

// Where the value of the top-level object's `key` lies in `json`: [begin, end), or {0, 0}. A
// byte scan that follows strings and nesting, far cheaper than building the value to drop it.
std::pair<std::size_t, std::size_t> TopLevelValue(std::string_view json, std::string_view key) {
  int depth = 0;
  for (std::size_t i = 0; i < json.size();) {
    const char c = json[i];
    if (c == '"') {
      const std::size_t end = StringEnd(json, i);
      if (end == std::string_view::npos) break;
      std::size_t v = end;
      while (v < json.size() && IsJsonSpace(json[v])) ++v;
      const bool is_key = v < json.size() && json[v] == ':';
      if (depth == 1 && is_key && json.substr(i + 1, end - i - 2) == key) {
        ++v;
        while (v < json.size() && IsJsonSpace(json[v])) ++v;
        const std::size_t value_end = ValueEnd(json, v);
        if (value_end == std::string_view::npos) break;
        return {v, value_end};
      }
      i = end;
      continue;
    }
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    ++i;
  }
  return {0, 0};
}

absl::StatusOr<Json> ParseBody(const HttpResponse& r, std::string_view what,
                               bool without_spec = false) {
  Json j;
  const auto [begin, end] =
      without_spec ? TopLevelValue(r.body, "spec") : std::pair<std::size_t, std::size_t>{0, 0};
  if (end > begin) {
    // The spec's value replaced by null, then dropped: the rest is decoded as usual.
    std::string rest = r.body.substr(0, begin);
    rest += "null";
    rest.append(r.body, end, std::string::npos);
    j = Json::parse(rest, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) j.erase("spec");
  } else {
    j = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  }
  if (j.is_discarded()) {
    return absl::DataLossError(StrCat(what, ": the server sent malformed JSON (", r.body.size(),
                                      " bytes, starting \"", r.body.substr(0, 60), "\")"));
  }
  return j;
}

std::string NameOf(const Json& object) {
  if (object.is_object() && object.contains("metadata") && object["metadata"].is_object()) {
    return object["metadata"].value("name", "");
  }
  return "";
}

bool Retryable(int status) { return status == 429 || status >= 500; }

}  // namespace

Client::Client(Config config, ClientOptions options)
    : http_(config), options_(std::move(options)), rng_(std::random_device{}()) {}

std::string Client::Path(const ResourceType& type, std::string_view ns, std::string_view name,
                         std::string_view subresource) {
  std::string p = type.group.empty() ? StrCat("/api/", type.version)
                                     : StrCat("/apis/", type.group, "/", type.version);
  if (type.namespaced && !ns.empty()) p += StrCat("/namespaces/", ns);
  p += StrCat("/", type.resource);
  if (!name.empty()) p += StrCat("/", name);
  if (!subresource.empty()) p += StrCat("/", subresource);
  return p;
}

std::vector<std::string> Client::Headers(std::string_view content_type, std::string_view accept) {
  std::vector<std::string> h = {StrCat("Accept: ", accept),
                                StrCat("User-Agent: ", options_.user_agent)};
  if (!content_type.empty()) h.push_back(StrCat("Content-Type: ", content_type));
  if (config().token != nullptr) {
    const std::string token = config().token->Token();
    if (!token.empty()) h.push_back(StrCat("Authorization: Bearer ", token));
  }
  return h;
}

std::chrono::milliseconds Client::Backoff(int attempt) {
  double ms = static_cast<double>(options_.initial_backoff.count());
  for (int i = 0; i < attempt && ms < options_.max_backoff.count(); ++i) ms *= 2;
  ms = std::min(ms, static_cast<double>(options_.max_backoff.count()));
  std::lock_guard<std::mutex> lock(rng_mu_);
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(ms * std::uniform_real_distribution<double>(0.75, 1.25)(rng_)));
}

bool Client::SleepFor(std::chrono::milliseconds d, const std::atomic<bool>* stop) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (stop != nullptr && stop->load()) return false;
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(50), std::chrono::duration_cast<std::chrono::milliseconds>(
                                           until - std::chrono::steady_clock::now()) +
                                           std::chrono::milliseconds(1)));
  }
  return stop == nullptr || !stop->load();
}

absl::StatusOr<HttpResponse> Client::Send(HttpRequest request, std::string_view content_type,
                                          bool idempotent, std::string_view what) {
  bool reauthenticated = false;
  absl::Status last;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    request.headers = Headers(content_type);
    absl::StatusOr<HttpResponse> r = http_.Do(request);
    std::chrono::milliseconds wait = Backoff(attempt);
    if (!r.ok()) {
      last = r.status();
      if (!idempotent) return last;  // the server may have acted on it
    } else if (r->status == 401 && config().token != nullptr && !config().token->path().empty() &&
               !reauthenticated) {
      config().token->Invalidate();  // a rotated service-account token: read it again, once
      reauthenticated = true;
      --attempt;
      continue;
    } else if (Retryable(r->status) && (idempotent || r->status == 429 || r->status == 503)) {
      last = StatusFromResponse(r->status, r->body, what);
      if (auto it = r->headers.find("retry-after"); it != r->headers.end()) {
        int seconds = 0;
        if (absl::SimpleAtoi(it->second, &seconds) && seconds >= 0) {
          wait = std::min<std::chrono::milliseconds>(std::chrono::seconds(seconds),
                                                     std::chrono::seconds(60));
        }
      }
    } else {
      return r;
    }
    if (attempt + 1 < options_.max_attempts) SleepFor(wait, nullptr);
  }
  return absl::Status(last.code(),
                      StrCat(last.message(), " (after ", options_.max_attempts, " attempts)"));
}

absl::StatusOr<Json> Client::Raw(std::string_view method, std::string_view path_and_query,
                                 const Json* body, std::string_view content_type) {
  return Call(method, std::string(path_and_query), body != nullptr ? body->dump() : std::string(),
              body != nullptr ? content_type : "", {});
}

absl::StatusOr<Json> Client::Get(const ResourceType& type, std::string_view ns,
                                 std::string_view name) {
  return Raw("GET", Path(type, ns, name));
}

absl::StatusOr<Json> Client::ListPage(const ResourceType& type, std::string_view ns,
                                      const ListOptions& options, std::string_view continue_token) {
  std::string q;
  AddParam(&q, "labelSelector", options.label_selector);
  AddParam(&q, "fieldSelector", options.field_selector);
  if (options.limit > 0) AddParam(&q, "limit", std::to_string(options.limit));
  AddParam(&q, "continue", continue_token);
  if (continue_token.empty()) AddParam(&q, "resourceVersion", options.resource_version);
  return Raw("GET", Path(type, ns) + q);
}

absl::StatusOr<ListResult> Client::List(const ResourceType& type, std::string_view ns,
                                        const ListOptions& options) {
  for (int round = 0; round < 2; ++round) {
    ListResult out;
    std::string token;
    absl::Status failed;
    do {
      absl::StatusOr<Json> page = ListPage(type, ns, options, token);
      if (!page.ok()) {
        failed = page.status();
        break;
      }
      if (!page->contains("items") || !(*page)["items"].is_array()) {
        return absl::DataLossError(StrCat("LIST ", Path(type, ns), ": no items array"));
      }
      for (Json& item : (*page)["items"]) out.items.push_back(std::move(item));
      const Json& meta = page->value("metadata", Json::object());
      out.resource_version = meta.value("resourceVersion", "");
      token = meta.value("continue", "");
    } while (!token.empty());
    if (failed.ok()) return out;
    if (!IsGoneError(failed) || round == 1)
      return failed;  // an expired continue token: start over once
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<Json> Client::Call(std::string_view method, std::string path_and_query,
                                  std::string body, std::string_view content_type,
                                  const WriteOptions& options) {
  std::string q = WriteQuery(options);
  if (!q.empty() && path_and_query.find('?') != std::string::npos) q[0] = '&';
  path_and_query += q;
  HttpRequest req;
  req.method = std::string(method);
  req.url = StrCat(config().server, path_and_query);
  req.timeout = options_.timeout;
  req.body = std::move(body);
  const std::string what = StrCat(method, " ", path_and_query);
  absl::StatusOr<HttpResponse> r = Send(std::move(req), content_type, method != "POST", what);
  if (!r.ok()) return r.status();
  if (r->status / 100 != 2) return StatusFromResponse(r->status, r->body, what);
  return ParseBody(*r, what, options.answer_without_spec);
}

absl::StatusOr<Json> Client::Create(const ResourceType& type, std::string_view ns,
                                    const Json& object, const WriteOptions& options) {
  return Call("POST", Path(type, ns), object.dump(), "application/json", options);
}

absl::StatusOr<Json> Client::CreateSerialized(const ResourceType& type, std::string_view ns,
                                              std::string body, const WriteOptions& options) {
  return Call("POST", Path(type, ns), std::move(body), "application/json", options);
}

absl::StatusOr<Json> Client::Update(const ResourceType& type, std::string_view ns,
                                    const Json& object, const WriteOptions& options) {
  return Call("PUT", Path(type, ns, NameOf(object)), object.dump(), "application/json", options);
}

absl::StatusOr<Json> Client::UpdateSerialized(const ResourceType& type, std::string_view ns,
                                              std::string_view name, std::string body,
                                              const WriteOptions& options) {
  return Call("PUT", Path(type, ns, name), std::move(body), "application/json", options);
}

absl::StatusOr<Json> Client::UpdateStatus(const ResourceType& type, std::string_view ns,
                                          const Json& object, const WriteOptions& options) {
  return Call("PUT", Path(type, ns, NameOf(object), "status"), object.dump(), "application/json",
              options);
}

absl::StatusOr<Json> Client::Apply(const ResourceType& type, std::string_view ns,
                                   const Json& object, std::string_view field_manager, bool force,
                                   std::string_view subresource, const WriteOptions& options) {
  const std::string name = NameOf(object);
  if (name.empty()) return absl::InvalidArgumentError("apply: metadata.name is required");
  if (field_manager.empty())
    return absl::InvalidArgumentError("apply: a field manager is required");
  WriteOptions apply = options;
  apply.field_manager = std::string(field_manager);
  std::string path = Path(type, ns, name, subresource);
  if (force) path += "?force=true";
  return Call("PATCH", std::move(path), object.dump(), "application/apply-patch+yaml", apply);
}

absl::Status Client::Delete(const ResourceType& type, std::string_view ns, std::string_view name,
                            const Preconditions& preconditions) {
  Json options = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!preconditions.uid.empty()) options["preconditions"]["uid"] = preconditions.uid;
  if (!preconditions.resource_version.empty()) {
    options["preconditions"]["resourceVersion"] = preconditions.resource_version;
  }
  return Raw("DELETE", Path(type, ns, name), &options).status();
}

absl::StatusOr<Json> Client::Modify(const ResourceType& type, std::string_view ns,
                                    std::string_view name,
                                    const std::function<absl::StatusOr<bool>(Json&)>& mutate,
                                    bool status) {
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<Json> current = Get(type, ns, name);
    if (!current.ok()) return current.status();
    absl::StatusOr<bool> changed = mutate(*current);
    if (!changed.ok()) return changed.status();
    if (!*changed) return current;
    absl::StatusOr<Json> stored =
        status ? UpdateStatus(type, ns, *current) : Update(type, ns, *current);
    if (stored.ok() || !IsConflictError(stored.status())) return stored;
    last = stored.status();
    SleepFor(std::chrono::milliseconds(10 * (attempt + 1)), nullptr);
  }
  return last;
}

absl::Status Client::Watch(const ResourceType& type, std::string_view ns,
                           const WatchOptions& options,
                           const std::function<bool(WatchEvent&&)>& on_event,
                           const std::atomic<bool>* stop) {
  std::string q = "?watch=1&allowWatchBookmarks=true";
  AddParam(&q, "resourceVersion", options.resource_version);
  AddParam(&q, "labelSelector", options.label_selector);
  AddParam(&q, "fieldSelector", options.field_selector);
  std::int64_t timeout = options.timeout.count();
  {
    std::lock_guard<std::mutex> lock(rng_mu_);  // spread reconnects of many watchers
    timeout = std::uniform_int_distribution<std::int64_t>(timeout, 2 * timeout)(rng_);
  }
  AddParam(&q, "timeoutSeconds", std::to_string(timeout));
  const std::string path = Path(type, ns) + q;
  HttpRequest req;
  req.url = StrCat(config().server, path);
  // client-go's metadata informers ask the same; a server without it falls back to whole objects.
  req.headers = Headers("", options.metadata_only
                                ? "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,"
                                  "application/json"
                                : "application/json");
  WatchDecoder decoder;
  std::vector<WatchEvent> events;
  absl::Status decode_error;
  bool stopped_by_handler = false;
  auto on_data = [&](std::string_view chunk) {
    events.clear();
    decode_error = decoder.Feed(chunk, &events);
    for (WatchEvent& e : events) {
      if (!on_event(std::move(e))) {
        stopped_by_handler = true;
        return false;
      }
    }
    return decode_error.ok();
  };
  // The server sends a bookmark about every minute; three minutes of silence is a dead connection.
  absl::StatusOr<HttpResponse> r =
      http_.Stream(req, on_data, stop,
                   std::chrono::milliseconds(std::min<std::int64_t>(timeout + 30, 180) * 1000));
  if (!decode_error.ok())
    return absl::Status(decode_error.code(), StrCat("WATCH ", path, ": ", decode_error.message()));
  if (!r.ok()) return r.status();
  if (stopped_by_handler) return absl::OkStatus();
  if (r->status != 0 && r->status / 100 != 2) {
    if (r->status == 401 && config().token != nullptr) config().token->Invalidate();
    return StatusFromResponse(r->status, r->body, StrCat("WATCH ", path));
  }
  return absl::OkStatus();
}

}  // namespace tessera::kube
