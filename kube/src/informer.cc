#include "tessera/kube/informer.h"

#include "tessera/api/strings.h"
#include "tessera/kube/errors.h"

namespace tessera::kube {
namespace {

using api::Json;

std::string ResourceVersionOf(const Json& object) {
  if (object.contains("metadata") && object["metadata"].is_object()) {
    return object["metadata"].value("resourceVersion", "");
  }
  return "";
}

}  // namespace

Informer::Informer(Client& client, InformerOptions options)
    : client_(client), options_(std::move(options)) {}

Informer::~Informer() { Stop(); }

void Informer::AddHandlers(EventHandlers handlers) { handlers_.push_back(std::move(handlers)); }

void Informer::AddIndex(const std::string& name, IndexFunc fn) {
  index_funcs_[name] = std::move(fn);
}

void Informer::Start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
  if (options_.resync.count() > 0) {
    resync_thread_ = std::thread([this] {
      while (Client::SleepFor(options_.resync, &stop_)) {
        for (const Json& object : List()) {
          Dispatch([&] {
            for (const EventHandlers& h : handlers_) {
              if (h.on_update) h.on_update(object, object);
            }
          });
        }
      }
    });
  }
}

void Informer::Stop() {
  stop_ = true;
  synced_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (resync_thread_.joinable()) resync_thread_.join();
}

bool Informer::HasSynced() const {
  std::lock_guard<std::mutex> lock(mu_);
  return synced_;
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return synced_cv_.wait_for(lock, timeout, [&] { return synced_ || stop_.load(); }) && synced_;
}

std::string Informer::KeyOf(const Json& object) {
  const Json& meta = object.contains("metadata") ? object["metadata"] : Json::object();
  const std::string ns = meta.is_object() ? meta.value("namespace", "") : "";
  const std::string name = meta.is_object() ? meta.value("name", "") : "";
  return ns.empty() ? name : ns + "/" + name;
}

std::optional<Json> Informer::Get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

std::vector<Json> Informer::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Json> out;
  out.reserve(cache_.size());
  for (const auto& [key, object] : cache_) out.push_back(object);
  return out;
}

std::vector<Json> Informer::ByIndex(const std::string& index, const std::string& value) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Json> out;
  auto idx = indices_.find(index);
  if (idx == indices_.end()) return out;
  auto keys = idx->second.find(value);
  if (keys == idx->second.end()) return out;
  for (const std::string& key : keys->second) {
    auto it = cache_.find(key);
    if (it != cache_.end()) out.push_back(it->second);
  }
  return out;
}

std::size_t Informer::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.size();
}

std::string Informer::resource_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resource_version_;
}

InformerStats Informer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Informer::Dispatch(const std::function<void()>& call) {
  std::lock_guard<std::mutex> lock(dispatch_mu_);
  call();
}

void Informer::Upsert(Json object) {
  if (options_.transform) object = options_.transform(std::move(object));
  const std::string key = KeyOf(object);
  std::optional<Json> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      if (ResourceVersionOf(it->second) == ResourceVersionOf(object)) return;  // nothing new
      old = std::move(it->second);
      for (const auto& [name, fn] : index_funcs_) {
        for (const std::string& v : fn(*old)) indices_[name][v].erase(key);
      }
    }
    for (const auto& [name, fn] : index_funcs_) {
      for (const std::string& v : fn(object)) indices_[name][v].insert(key);
    }
    cache_[key] = object;
  }
  Dispatch([&] {
    for (const EventHandlers& h : handlers_) {
      if (old && h.on_update) h.on_update(*old, object);
      if (!old && h.on_add) h.on_add(object);
    }
  });
}

void Informer::Remove(const Json& object) {
  const std::string key = KeyOf(object);
  Json last = object;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it == cache_.end()) return;
    for (const auto& [name, fn] : index_funcs_) {
      for (const std::string& v : fn(it->second)) indices_[name][v].erase(key);
    }
    if (options_.transform) last = std::move(it->second);  // handlers see the cached form
    cache_.erase(it);
  }
  Dispatch([&] {
    for (const EventHandlers& h : handlers_) {
      if (h.on_delete) h.on_delete(last);
    }
  });
}

bool Informer::ListAndReplace() {
  for (int attempt = 0; !stop_; ++attempt) {
    absl::StatusOr<ListResult> list = client_.List(
        options_.type, options_.ns,
        {.label_selector = options_.label_selector, .field_selector = options_.field_selector});
    if (!list.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.errors;
        stats_.last_error = std::string(list.status().message());
      }
      if (!Client::SleepFor(client_.Backoff(std::min(attempt, 7)), &stop_)) return false;
      continue;
    }
    // The difference between the cache and the list: vanished objects are deleted.
    std::set<std::string> listed;
    for (const Json& item : list->items) listed.insert(KeyOf(item));
    std::vector<Json> vanished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [key, object] : cache_) {
        if (listed.count(key) == 0) vanished.push_back(object);
      }
    }
    for (const Json& object : vanished) Remove(object);
    for (Json& item : list->items) Upsert(std::move(item));
    {
      std::lock_guard<std::mutex> lock(mu_);
      resource_version_ = list->resource_version;
      ++stats_.lists;
      synced_ = true;
    }
    synced_cv_.notify_all();
    return true;
  }
  return false;
}

void Informer::Run() {
  while (!stop_) {
    if (!ListAndReplace()) return;
    int failures = 0;
    bool relist = false;
    while (!stop_ && !relist) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.watches;
      }
      bool progressed = false;
      bool error_event = false;
      absl::Status status = client_.Watch(
          options_.type, options_.ns,
          {.resource_version = resource_version(),
           .label_selector = options_.label_selector,
           .field_selector = options_.field_selector,
           .timeout = options_.watch_timeout,
           .metadata_only = options_.watch_metadata_only},
          [&](WatchEvent&& e) {
            if (e.type == EventType::kError) {
              const absl::Status s = StatusFromApiStatus(e.object, "WATCH ERROR event");
              std::lock_guard<std::mutex> lock(mu_);
              ++stats_.errors;
              stats_.last_error = std::string(s.message());
              error_event = true;
              if (IsGoneError(s)) {
                ++stats_.expired;
                relist = true;
              }
              return false;
            }
            progressed = true;
            const std::string rv = ResourceVersionOf(e.object);
            if (e.type == EventType::kDeleted) {
              Remove(e.object);
            } else if (e.type != EventType::kBookmark) {
              Upsert(std::move(e.object));
            }
            if (!rv.empty()) {
              std::lock_guard<std::mutex> lock(mu_);
              resource_version_ = rv;
            }
            return !stop_.load();
          },
          &stop_);
      if (stop_) return;
      if (IsGoneError(status)) {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.expired;
        relist = true;
      }
      if (relist) break;
      if (!status.ok() || error_event) {
        if (!status.ok()) {
          std::lock_guard<std::mutex> lock(mu_);
          ++stats_.errors;
          stats_.last_error = std::string(status.message());
        }
        failures = progressed ? 1 : failures + 1;
        if (!Client::SleepFor(client_.Backoff(std::min(failures, 7)), &stop_)) return;
      } else {
        failures = 0;  // the server ended the watch: resume from the last version
      }
    }
  }
}

}  // namespace tessera::kube
