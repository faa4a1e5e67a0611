#ifndef TESSERA_KUBE_INFORMER_H_
#define TESSERA_KUBE_INFORMER_H_

// List+watch into a local cache. One thread lists, then watches from the list's resource version;
// it re-watches from the last seen version when a watch ends or fails (with back-off), and relists
// when the version has expired (410 as the watch's HTTP status or as an ERROR event), emitting the
// difference between the old cache and the new list (adds, updates, and deletes of what vanished).
// Handlers run on the informer's thread, one at a time, never under the cache lock, so they may
// read the cache. A resync period re-delivers every cached object as an update.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "tessera/kube/client.h"

namespace tessera::kube {

struct EventHandlers {
  std::function<void(const api::Json& object)> on_add;
  std::function<void(const api::Json& old_object, const api::Json& new_object)> on_update;
  std::function<void(const api::Json& object)> on_delete;
};

// Index function: the index values of an object (e.g. a slice's spec.nodeName).
using IndexFunc = std::function<std::vector<std::string>(const api::Json& object)>;

struct InformerOptions {
  ResourceType type;
  std::string ns{};  // "" = all namespaces
  std::string label_selector{};
  std::string field_selector{};
  std::chrono::seconds resync{0};  // 0: never
  std::chrono::seconds watch_timeout{300};
  // Applied to every object before it is cached or handed to a handler (client-go's
  // SetTransform): keeps only what the owner needs, so a cache of large objects stays small. It
  // must keep metadata.name, namespace and resourceVersion.
  std::function<api::Json(api::Json)> transform{};
  // Lists return whole objects, watch events only their metadata (PartialObjectMetadata, see
  // WatchOptions::metadata_only): the transform must turn both into the cached form, fetching
  // what a metadata-only event leaves out when it needs it.
  bool watch_metadata_only = false;
};

struct InformerStats {
  int lists = 0;    // successful lists (1 + relists)
  int watches = 0;  // watch requests started
  int expired = 0;  // 410s seen
  int errors = 0;   // failed lists or watches
  std::string last_error;
};

class Informer {
 public:
  Informer(Client& client, InformerOptions options);
  ~Informer();  // stops and joins
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // REQUIRES: before Start().
  void AddHandlers(EventHandlers handlers);
  void AddIndex(const std::string& name, IndexFunc fn);

  void Start();
  void Stop();

  bool HasSynced() const;
  // True once the first list is in the cache; false on timeout or Stop.
  bool WaitForSync(std::chrono::milliseconds timeout);

  // "namespace/name" for namespaced kinds, "name" otherwise.
  static std::string KeyOf(const api::Json& object);
  std::optional<api::Json> Get(const std::string& key) const;
  std::vector<api::Json> List() const;
  std::vector<api::Json> ByIndex(const std::string& index, const std::string& value) const;
  std::size_t size() const;
  std::string resource_version() const;
  InformerStats stats() const;

 private:
  void Run();
  bool ListAndReplace();  // false when stopped
  void Upsert(api::Json object);
  void Remove(const api::Json& object);
  void Dispatch(const std::function<void()>& call);

  Client& client_;
  const InformerOptions options_;
  std::vector<EventHandlers> handlers_;
  std::map<std::string, IndexFunc> index_funcs_;

  mutable std::mutex mu_;
  std::condition_variable synced_cv_;
  std::map<std::string, api::Json> cache_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<std::string, std::set<std::string>>> indices_ ABSL_GUARDED_BY(mu_);
  std::string resource_version_ ABSL_GUARDED_BY(mu_);
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
  InformerStats stats_ ABSL_GUARDED_BY(mu_);

  std::mutex dispatch_mu_;  // one handler at a time
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::thread resync_thread_;
};

}  // namespace tessera::kube

#endif  // TESSERA_KUBE_INFORMER_H_
