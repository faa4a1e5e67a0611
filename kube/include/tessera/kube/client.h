#ifndef TESSERA_KUBE_CLIENT_H_
#define TESSERA_KUBE_CLIENT_H_

// A thin client for the Kubernetes REST API: objects are nlohmann JSON (the api/ types decode and
// encode them), every call has a timeout, and failures that the server invites us to retry (429,
// 5xx, network errors on idempotent calls) are retried with exponential back-off and jitter,
// honouring Retry-After. A 401 re-reads a token file once. Errors carry the server's Status
// (errors.h).
//
// Thread-safe: calls from many threads share a pool of connections.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "tessera/api/json_decode.h"
#include "tessera/kube/config.h"
#include "tessera/kube/http.h"
#include "tessera/kube/watch.h"

namespace tessera::kube {

// What a URL path needs to know about a kind.
struct ResourceType {
  std::string group;     // "" for the core group
  std::string version;   // "v1"
  std::string resource;  // plural: "resourceslices"
  std::string kind;      // "ResourceSlice"
  bool namespaced = false;

  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
};

// The kinds tessera uses.
namespace resources {
extern const ResourceType kNodes, kPods, kEvents, kLeases, kResourceSlices, kResourceClaims,
    kDeviceClasses, kGpuInventories, kGpuPartitionPolicies, kNamespaces;
}  // namespace resources

struct ListOptions {
  std::string label_selector{};
  std::string field_selector{};
  int limit = 500;                 // per page; 0: no paging
  std::string resource_version{};  // "": a consistent read; "0": any (from the cache)
};

struct ListResult {
  std::vector<api::Json> items;
  std::string resource_version;  // where a watch of this list starts
};

struct WriteOptions {
  bool dry_run = false;
  bool strict_field_validation = false;  // fieldValidation=Strict
  std::string field_manager{};           // fieldManager: who owns the fields written
  // The answer's top-level "spec" is skipped, not decoded: for large objects whose spec the
  // caller sent and does not need back (a ResourceSlice of 64 devices).
  bool answer_without_spec = false;
};

struct Preconditions {
  std::string uid{};
  std::string resource_version{};
};

struct WatchOptions {
  std::string resource_version{};
  std::string label_selector{};
  std::string field_selector{};
  std::chrono::seconds timeout{300};  // the server ends the watch after this (randomised up to 2x)
  // Events carry PartialObjectMetadata (apiVersion meta.k8s.io/v1, metadata only): the server
  // encodes and sends a fraction of each object. A server that cannot sends whole objects.
  bool metadata_only = false;
};

struct ClientOptions {
  std::string user_agent = "tessera";
  std::chrono::milliseconds timeout{30000};
  int max_attempts = 5;  // for retryable failures
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{10000};
};

class Client {
 public:
  Client(Config config, ClientOptions options = {});

  const Config& config() const { return http_.config(); }
  const ClientOptions& options() const { return options_; }

  // The path of a collection or object: "/apis/resource.k8s.io/v1/resourceslices/<name>".
  static std::string Path(const ResourceType& type, std::string_view ns, std::string_view name = {},
                          std::string_view subresource = {});

  absl::StatusOr<api::Json> Get(const ResourceType& type, std::string_view ns,
                                std::string_view name);
  // One page; `continue_token` from the previous page ("" for the first).
  absl::StatusOr<api::Json> ListPage(const ResourceType& type, std::string_view ns,
                                     const ListOptions& options, std::string_view continue_token);
  // Every page. If the continue token expires mid-way (410), the list starts over once.
  absl::StatusOr<ListResult> List(const ResourceType& type, std::string_view ns,
                                  const ListOptions& options = {});

  absl::StatusOr<api::Json> Create(const ResourceType& type, std::string_view ns,
                                   const api::Json& object, const WriteOptions& options = {});
  // Create and Update of an object the caller has already serialised (`body`: its JSON).
  absl::StatusOr<api::Json> CreateSerialized(const ResourceType& type, std::string_view ns,
                                             std::string body, const WriteOptions& options = {});
  absl::StatusOr<api::Json> UpdateSerialized(const ResourceType& type, std::string_view ns,
                                             std::string_view name, std::string body,
                                             const WriteOptions& options = {});
  // PUT with the object's metadata.resourceVersion; 409 if it is stale.
  absl::StatusOr<api::Json> Update(const ResourceType& type, std::string_view ns,
                                   const api::Json& object, const WriteOptions& options = {});
  absl::StatusOr<api::Json> UpdateStatus(const ResourceType& type, std::string_view ns,
                                         const api::Json& object, const WriteOptions& options = {});
  // Server-side apply of `object` (apiVersion, kind, metadata.name required) by `field_manager`.
  absl::StatusOr<api::Json> Apply(const ResourceType& type, std::string_view ns,
                                  const api::Json& object, std::string_view field_manager,
                                  bool force, std::string_view subresource = {},
                                  const WriteOptions& options = {});
  // DELETE with optional preconditions; NotFound if already gone.
  absl::Status Delete(const ResourceType& type, std::string_view ns, std::string_view name,
                      const Preconditions& preconditions = {});

  // Read-modify-write: GET the object, let `mutate` change it (return false: nothing to do), PUT
  // it; on 409 start over, up to 5 times with back-off. Returns the stored object.
  absl::StatusOr<api::Json> Modify(const ResourceType& type, std::string_view ns,
                                   std::string_view name,
                                   const std::function<absl::StatusOr<bool>(api::Json&)>& mutate,
                                   bool status = false);

  // A watch: events go to `on_event` (return false to stop) until the server ends the stream, the
  // stream fails, or `stop` is set. ERROR events are passed on; the caller decides (410: relist).
  // Returns OK when the stream ended normally or was stopped.
  absl::Status Watch(const ResourceType& type, std::string_view ns, const WatchOptions& options,
                     const std::function<bool(WatchEvent&&)>& on_event,
                     const std::atomic<bool>* stop);

  // Any request to a path ("/version"); JSON in and out.
  absl::StatusOr<api::Json> Raw(std::string_view method, std::string_view path_and_query,
                                const api::Json* body = nullptr,
                                std::string_view content_type = "application/json");

  // Waits `d` unless `stop` is set first (polled); false if stopped.
  static bool SleepFor(std::chrono::milliseconds d, const std::atomic<bool>* stop);
  // Exponential back-off with ±25 % jitter for attempt 0, 1, 2, ...
  std::chrono::milliseconds Backoff(int attempt);

 private:
  // Sends with fresh headers (and token) on every attempt; see the retry rules above.
  absl::StatusOr<HttpResponse> Send(HttpRequest request, std::string_view content_type,
                                    bool idempotent, std::string_view what);
  std::vector<std::string> Headers(std::string_view content_type,
                                   std::string_view accept = "application/json");
  // Every request but a watch: `body` serialised ("" and no content type for none), the query of
  // `options` appended, the answer decoded as `options` asks.
  absl::StatusOr<api::Json> Call(std::string_view method, std::string path_and_query,
                                 std::string body, std::string_view content_type,
                                 const WriteOptions& options);

  HttpClient http_;
  ClientOptions options_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

}  // namespace tessera::kube

#endif  // TESSERA_KUBE_CLIENT_H_
