#include "tessera/controller/controller.h"

#include <malloc.h>

#include <algorithm>
#include <charconv>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "spdlog/spdlog.h"
#include "tessera/api/strings.h"
#include "tessera/kube/discovery.h"
#include "tessera/kube/errors.h"
#include "tessera/kube/leader.h"
#include "tessera/partitioner/slices.h"

namespace tessera::controller {

namespace res = kube::resources;
using Clock = std::chrono::steady_clock;

struct Controller::NodeContext {
  std::shared_ptr<const api::GpuPartitionPolicySpec> policy;  // in force for this node
  bool published = false;  // our slices for the node are out (guarded by mu_)
};

namespace {

constexpr auto kWrittenTtl = std::chrono::seconds(60);

// The inventory cache holds each spec as its JSON text (about 17 KB for 8 MIG GPUs, a tenth of
// its decoded form): 500 nodes' inventories would otherwise be most of the controller's memory.
// "spec" keeps only nodeName.
constexpr char kSpecText[] = "tessera.dev/specText";

api::Json InventoryCacheForm(api::Json inv) {
  if (auto m = inv.find("metadata"); m != inv.end() && m->is_object()) m->erase("managedFields");
  auto spec = inv.find("spec");
  if (spec == inv.end()) return inv;
  api::Json small = api::Json::object();
  if (auto n = spec->find("nodeName"); n != spec->end()) small["nodeName"] = *n;
  inv[kSpecText] = spec->dump();
  *spec = std::move(small);
  return inv;
}

// The whole inventory again, for decoding.
api::Json InventoryFromCache(api::Json inv) {
  auto text = inv.find(kSpecText);
  if (text == inv.end() || !text->is_string()) return inv;
  inv["spec"] = api::Json::parse(text->get_ref<const std::string&>(), nullptr,
                                 /*allow_exceptions=*/false);
  inv.erase(kSpecText);
  return inv;
}

std::string NodeOfInventory(const api::Json& inv) {
  std::string node;
  if (auto spec = inv.find("spec"); spec != inv.end() && spec->is_object())
    node = spec->value("nodeName", std::string());
  if (node.empty()) node = inv["metadata"].value("name", std::string());
  return node;
}

std::string HeartbeatOf(const api::Json& inv) {
  return inv.value("status", api::Json::object()).value("heartbeatTime", std::string());
}

std::int64_t RvNumber(const std::string& rv) {
  std::int64_t n = -1;
  std::from_chars(rv.data(), rv.data() + rv.size(), n);
  return n;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::set<std::string> PoolsOf(const api::Json& claim, std::string_view driver) {
  std::set<std::string> pools;
  for (const AllocatedDevice& a : AllocatedDevicesOf(claim, driver)) pools.insert(a.pool);
  return pools;
}

api::Json AllocationOf(const api::Json& claim) {
  if (!claim.contains("status") || !claim["status"].contains("allocation")) return nullptr;
  return claim["status"]["allocation"];
}

}  // namespace

Controller::Controller(kube::Client& client, ControllerOptions options, ControllerMetrics& metrics)
    : client_(client),
      options_(std::move(options)),
      metrics_(metrics),
      queue_(WorkQueue::Options{.batch = options_.batch}),
      events_(client, EventRecorder::Options{.ns = options_.events_namespace}) {}

Controller::~Controller() { Stop(); }

absl::Status Controller::Start(std::chrono::milliseconds sync_timeout) {
  if (options_.features) {
    features_ = *options_.features;
  } else {
    absl::StatusOr<kube::ServerVersion> version = kube::GetServerVersion(client_);
    if (!version.ok()) return version.status();
    absl::StatusOr<kube::SliceFeatures> probed = kube::ProbeSliceFeatures(client_, options_.driver);
    if (!probed.ok()) return probed.status();
    features_ = {.partitionable_devices = probed->partitionable_devices,
                 .consumable_capacity = probed->consumable_capacity,
                 .counters_in_own_slice = probed->counters_in_own_slice};
    spdlog::info(
        "API server {} (emulating 1.{}): partitionable devices {}, consumable capacity {}, "
        "counters in their own slice {}",
        version->git_version, version->minor, features_.partitionable_devices ? "on" : "off",
        features_.consumable_capacity ? "on" : "off", features_.counters_in_own_slice);
  }
  placer_ = std::make_unique<partitioner::Placer>(options_.placement);

  // What the caches keep: a Node's identity and labels only (its status — images, conditions —
  // is most of it and changes every few seconds), and no managedFields anywhere (as large as the
  // spec for objects written by server-side apply, such as the plugin's GpuInventory).
  auto without_managed_fields = [](api::Json o) {
    if (auto m = o.find("metadata"); m != o.end() && m->is_object()) m->erase("managedFields");
    return o;
  };
  nodes_ = std::make_unique<kube::Informer>(
      client_,
      kube::InformerOptions{.type = res::kNodes, .transform = [](api::Json n) {
                              api::Json meta = api::Json::object();
                              const api::Json& m = n["metadata"];
                              for (const char* key : {"name", "uid", "resourceVersion", "labels"}) {
                                if (m.contains(key)) meta[key] = m[key];
                              }
                              return api::Json{{"metadata", std::move(meta)}};
                            }});
  inventories_ = std::make_unique<kube::Informer>(
      client_,
      kube::InformerOptions{.type = res::kGpuInventories, .transform = InventoryCacheForm});
  policies_ = std::make_unique<kube::Informer>(
      client_, kube::InformerOptions{.type = res::kGpuPartitionPolicies,
                                     .transform = without_managed_fields});
  claims_ = std::make_unique<kube::Informer>(
      client_,
      kube::InformerOptions{.type = res::kResourceClaims, .transform = without_managed_fields});
  slices_ = std::make_unique<kube::Informer>(
      client_,
      kube::InformerOptions{.type = res::kResourceSlices,
                            .field_selector = StrCat("spec.driver=", options_.driver),
                            .transform = [this](api::Json s) { return CachedSlice(std::move(s)); },
                            // Each slice of 64 devices would otherwise be encoded by the
                            // API server and decoded here once more per write.
                            .watch_metadata_only = true});
  RegisterHandlers();
  for (kube::Informer* i :
       {nodes_.get(), inventories_.get(), policies_.get(), claims_.get(), slices_.get()}) {
    i->Start();
  }
  const auto deadline = Clock::now() + sync_timeout;
  for (auto [name, i] : {std::pair{"nodes", nodes_.get()},
                         {"gpuinventories", inventories_.get()},
                         {"gpupartitionpolicies", policies_.get()},
                         {"resourceclaims", claims_.get()},
                         {"resourceslices", slices_.get()}}) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (!i->WaitForSync(std::max(left, std::chrono::milliseconds(1)))) {
      return absl::DeadlineExceededError(StrCat("informer for ", name, " did not sync within ",
                                                sync_timeout.count(),
                                                " ms: ", i->stats().last_error));
    }
  }
  // Policies first, so that the first sync of every node already has its policy.
  if (absl::Status s = SyncPolicies(); !s.ok()) {
    spdlog::warn("policies: {}; retrying", std::string(s.message()));
    queue_.AddRateLimited(kPoliciesKey);
  }
  for (const api::Json& inv : inventories_->List()) queue_.Add(NodeOfInventory(inv));
  // Pools of nodes that no longer have an inventory are withdrawn.
  for (const api::Json& slice : slices_->List()) {
    queue_.Add(slice["spec"]["pool"].value("name", std::string()));
  }
  for (int i = 0; i < std::max(1, options_.workers); ++i)
    workers_.emplace_back([this] { Worker(); });
  sweeper_ = std::thread([this] { Sweep(); });
  return absl::OkStatus();
}

void Controller::Stop() {
  if (stop_.exchange(true)) return;
  queue_.ShutDown();
  for (std::thread& t : workers_) t.join();
  if (sweeper_.joinable()) sweeper_.join();
  for (kube::Informer* i :
       {nodes_.get(), inventories_.get(), policies_.get(), claims_.get(), slices_.get()}) {
    if (i != nullptr) i->Stop();
  }
}

void Controller::RegisterHandlers() {
  nodes_->AddHandlers({
      .on_add =
          [this](const api::Json& n) {
            queue_.Add(n["metadata"]["name"]);
            queue_.Add(kPoliciesKey);
          },
      .on_update =
          [this](const api::Json& o, const api::Json& n) {
            const api::Json& om = o["metadata"];
            const api::Json& nm = n["metadata"];
            if (om.value("labels", api::Json::object()) != nm.value("labels", api::Json::object()))
              queue_.Add(kPoliciesKey);
            if (om.value("uid", "") != nm.value("uid", "")) queue_.Add(nm["name"]);
          },
      .on_delete =
          [this](const api::Json& n) {
            queue_.Add(n["metadata"]["name"]);
            queue_.Add(kPoliciesKey);
          },
  });

  inventories_->AddHandlers({
      .on_add =
          [this](const api::Json& inv) {
            const std::string node = NodeOfInventory(inv);
            {
              std::lock_guard<std::mutex> lock(mu_);
              heartbeats_[node] = {HeartbeatOf(inv), Clock::now(), std::nullopt};
            }
            queue_.Add(node);
          },
      .on_update =
          [this](const api::Json& o, const api::Json& n) {
            const std::string node = NodeOfInventory(n);
            bool requeue = o.value(kSpecText, std::string()) != n.value(kSpecText, std::string());
            const std::string hb = HeartbeatOf(n);
            {
              std::lock_guard<std::mutex> lock(mu_);
              Heartbeat& h = heartbeats_[node];
              if (hb != h.value) {
                const bool was_stale = Clock::now() - h.seen > options_.heartbeat_timeout;
                h.value = hb;
                h.seen = Clock::now();
                if (h.wiped && h.seen > *h.wiped) {
                  h.wiped.reset();
                  requeue = true;
                }
                auto it = contexts_.find(node);
                if (was_stale || it == contexts_.end() || !it->second->published) requeue = true;
              }
            }
            if (requeue) queue_.Add(node);
          },
      .on_delete = [this](const api::Json& inv) { queue_.Add(NodeOfInventory(inv)); },
  });

  auto policy_changed = [this](const api::Json& o, const api::Json& n) {
    // Our own status writes come back as updates; only the spec (generation) matters.
    if (o["metadata"].value("generation", 0) != n["metadata"].value("generation", 0) ||
        o.value("spec", api::Json()) != n.value("spec", api::Json()))
      queue_.Add(kPoliciesKey);
  };
  policies_->AddHandlers({
      .on_add = [this](const api::Json&) { queue_.Add(kPoliciesKey); },
      .on_update = policy_changed,
      .on_delete = [this](const api::Json&) { queue_.Add(kPoliciesKey); },
  });

  const std::string driver = options_.driver;
  claims_->AddIndex("pool", [driver](const api::Json& c) {
    const std::set<std::string> pools = PoolsOf(c, driver);
    return std::vector<std::string>(pools.begin(), pools.end());
  });
  claims_->AddHandlers({
      .on_add =
          [this](const api::Json& c) {
            for (const std::string& p : PoolsOf(c, options_.driver)) queue_.Add(p);
          },
      .on_update =
          [this](const api::Json& o, const api::Json& n) {
            if (AllocationOf(o) == AllocationOf(n)) return;
            std::set<std::string> pools = PoolsOf(o, options_.driver);
            pools.merge(PoolsOf(n, options_.driver));
            for (const std::string& p : pools) queue_.Add(p);
          },
      .on_delete =
          [this](const api::Json& c) {
            for (const std::string& p : PoolsOf(c, options_.driver)) queue_.Add(p);
          },
  });

  slices_->AddIndex("pool", [](const api::Json& s) {
    return std::vector<std::string>{s["spec"]["pool"].value("name", std::string())};
  });
  slices_->AddHandlers({
      .on_add =
          [this](const api::Json& s) {
            if (!IsOurWrite(s, false)) queue_.Add(s["spec"]["pool"].value("name", std::string()));
          },
      .on_update =
          [this](const api::Json&, const api::Json& s) {
            if (!IsOurWrite(s, false)) queue_.Add(s["spec"]["pool"].value("name", std::string()));
          },
      .on_delete =
          [this](const api::Json& s) {
            if (IsOurWrite(s, true)) return;
            const std::string node = s["spec"]["pool"].value("name", std::string());
            {
              std::lock_guard<std::mutex> lock(mu_);
              auto it = heartbeats_.find(node);
              if (it != heartbeats_.end()) it->second.wiped = Clock::now();
            }
            spdlog::info(
                "node {}: slice {} was deleted by someone else (the kubelet wipes a node's slices "
                "when it starts or its plugin has been gone 30 s); republishing after the next "
                "plugin heartbeat",
                node, s["metadata"].value("name", ""));
            queue_.Add(node);
          },
  });
}

void Controller::BeginWrite(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  ++in_flight_[name];
}

void Controller::EndWrite(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = in_flight_.find(name);
    if (it != in_flight_.end() && --it->second <= 0) in_flight_.erase(it);
  }
  written_cv_.notify_all();
}

void Controller::AwaitWrite(std::unique_lock<std::mutex>& lock, const std::string& name) {
  // The API server sends the watch event and the write's answer at the same moment; the answer
  // is being read on another connection. Bounded: a stuck write must not stall the informer.
  written_cv_.wait_for(lock, std::chrono::seconds(5), [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return in_flight_.count(name) == 0;
  });
}

std::optional<api::Json> Controller::WrittenCompact(const api::Json& slice) {
  const api::Json& meta = slice["metadata"];
  const std::string name = meta.value("name", std::string());
  std::unique_lock<std::mutex> lock(mu_);
  AwaitWrite(lock, name);
  auto it = written_.find(name);
  if (it == written_.end() || !it->second.object ||
      it->second.resource_version != meta.value("resourceVersion", std::string()))
    return std::nullopt;
  return it->second.object;
}

api::Json Controller::CachedSlice(api::Json slice) {
  // Our own writes come back as watch events: reuse what we recorded.
  if (std::optional<api::Json> c = WrittenCompact(slice)) return *std::move(c);
  if (slice.contains("spec"))
    return CompactSlice(std::move(slice));  // a list, or a server without metadata
  if (std::optional<api::Json> c = CompactFromAnnotation(slice, options_.driver))
    return *std::move(c);
  // Only metadata, and its annotation is missing or stale (someone changed the spec): read it.
  const std::string name = slice["metadata"].value("name", std::string());
  absl::StatusOr<api::Json> whole = client_.Get(res::kResourceSlices, "", name);
  if (whole.ok()) {
    metrics_.SliceReads();
    return CompactSlice(*std::move(whole));
  }
  spdlog::warn(
      "ResourceSlice {}: changed by someone else and could not be read ({}); it is "
      "rewritten or deleted",
      name, std::string(whole.status().message()));
  return UnreadableCompact(slice, options_.driver);
}

bool Controller::IsOurWrite(const api::Json& slice, bool deleted) {
  const std::string name = slice["metadata"].value("name", std::string());
  std::unique_lock<std::mutex> lock(mu_);
  AwaitWrite(lock, name);
  auto it = written_.find(name);
  if (it == written_.end()) return false;
  if (deleted) return it->second.resource_version.empty();
  const std::int64_t ours = RvNumber(it->second.resource_version);
  const std::int64_t seen = RvNumber(slice["metadata"].value("resourceVersion", std::string()));
  return ours >= 0 && seen >= 0 && seen <= ours;
}

void Controller::Remember(const std::string& node, const std::string& name,
                          const api::Json* object) {
  std::lock_guard<std::mutex> lock(mu_);
  Written w{.node = node,
            .resource_version = object == nullptr
                                    ? std::string()
                                    : (*object)["metadata"].value("resourceVersion", std::string()),
            .object = object == nullptr ? std::nullopt : std::optional<api::Json>(*object),
            .at = Clock::now()};
  written_[name] = std::move(w);
}

std::vector<StoredSlice> Controller::StoredSlices(const std::string& node) {
  std::map<std::string, api::Json> view;
  for (api::Json& s : slices_->ByIndex("pool", node)) {
    std::string name = s["metadata"].value("name", std::string());
    view.emplace(std::move(name), std::move(s));
  }
  {
    // The informer may not have seen our latest writes yet.
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = Clock::now();
    for (const auto& [name, w] : written_) {
      if (w.node != node || now - w.at > kWrittenTtl) continue;
      if (!w.object) {
        view.erase(name);
        continue;
      }
      auto it = view.find(name);
      if (it == view.end() ||
          RvNumber(it->second["metadata"].value("resourceVersion", std::string())) <
              RvNumber(w.resource_version)) {
        view[name] = *w.object;
      }
    }
  }
  std::vector<StoredSlice> out;
  for (const auto& [name, s] : view) out.push_back(ToStoredSlice(s));
  return out;
}

Controller::NodeContext& Controller::Context(const std::string& node) {
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<NodeContext>& ctx = contexts_[node];
  if (ctx == nullptr) ctx = std::make_unique<NodeContext>();
  return *ctx;
}

void Controller::Warn(const ObjectRef& object, const std::string& reason,
                      const std::string& message) {
  spdlog::warn("{} {}: {}: {}", object.kind, object.name, reason, message);
  events_.Record(object, "Warning", reason, message);
}

void Controller::Worker() {
  while (std::optional<std::string> key = queue_.Get()) {
    const auto began = Clock::now();
    absl::Status s = *key == kPoliciesKey ? SyncPolicies() : SyncNode(*key);
    if (*key != kPoliciesKey) metrics_.ObserveReconcile(Seconds(Clock::now() - began), s.ok());
    if (s.ok()) {
      queue_.Forget(*key);
    } else {
      const int failures = queue_.Failures(*key);
      spdlog::warn("sync {} failed ({} in a row): {}", *key == kPoliciesKey ? "policies" : *key,
                   failures + 1, std::string(s.message()));
      queue_.AddRateLimited(*key);
    }
    queue_.Done(*key);
    metrics_.SetQueueDepth(static_cast<double>(queue_.Depth()));
    ReleaseFreedMemory();
  }
}

void Controller::ReleaseFreedMemory() {
  // A sync allocates and frees a few MB of JSON (slices, answers, watch events) on whichever
  // thread runs it; glibc keeps freed pages in each thread's arena. Hand them back at most once
  // a second, so that resident memory follows the caches rather than the busiest moment.
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
          .count();
  std::int64_t last = last_trim_ms_.load();
  if (now - last < 1000 || !last_trim_ms_.compare_exchange_strong(last, now)) return;
  malloc_trim(0);
}

void Controller::Sweep() {
  const auto period = std::clamp(options_.heartbeat_timeout / 4, std::chrono::milliseconds(100),
                                 std::chrono::milliseconds(5000));
  while (kube::Client::SleepFor(period, &stop_)) {
    std::vector<std::string> stale;
    double published = 0, withdrawn = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto now = Clock::now();
      for (const auto& [node, hb] : heartbeats_) {
        auto it = contexts_.find(node);
        const bool is_published = it != contexts_.end() && it->second->published;
        if (is_published && now - hb.seen > options_.heartbeat_timeout) stale.push_back(node);
      }
      for (auto it = written_.begin(); it != written_.end();) {
        it = now - it->second.at > kWrittenTtl ? written_.erase(it) : std::next(it);
      }
      for (const auto& [node, ctx] : contexts_) {
        (ctx->published ? published : withdrawn) += 1;
      }
    }
    for (const std::string& node : stale) queue_.Add(node);
    metrics_.SetPools(published, withdrawn);
    metrics_.SetQueueDepth(static_cast<double>(queue_.Depth()));
  }
}

absl::Status Controller::Withdraw(const std::string& node, NodeContext& ctx,
                                  const std::string& reason) {
  std::vector<StoredSlice> stored = StoredSlices(node);
  int deleted = 0;
  for (const StoredSlice& s : stored) {
    BeginWrite(s.name);
    absl::Cleanup done = [&] { EndWrite(s.name); };
    absl::Status st = client_.Delete(res::kResourceSlices, "", s.name,
                                     {.uid = s.uid, .resource_version = s.resource_version});
    if (!st.ok() && !kube::IsNotFoundError(st)) return st;
    Remember(node, s.name, nullptr);
    ++deleted;
  }
  metrics_.SliceWrites("delete", deleted);
  bool was_published = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_published = std::exchange(ctx.published, false);
  }
  if (deleted > 0 || was_published) {
    spdlog::info("node {}: withdrew {} slice(s): {}", node, deleted, reason);
    if (nodes_->Get(node)) {
      events_.Record({.api_version = "v1", .kind = "Node", .name = node}, "Warning",
                     "GpuSlicesWithdrawn", reason);
    }
  }
  return absl::OkStatus();
}

absl::Status Controller::SyncNode(const std::string& node) {
  if (node.empty()) return absl::OkStatus();
  NodeContext& ctx = Context(node);
  const std::optional<api::Json> node_obj = nodes_->Get(node);
  const std::optional<api::Json> inv_obj = inventories_->Get(node);
  if (!node_obj) return Withdraw(node, ctx, "the Node is gone");
  if (!inv_obj)
    return Withdraw(node, ctx, "the node has no GpuInventory (no plugin has run there)");
  const ObjectRef node_ref{.api_version = "v1",
                           .kind = "Node",
                           .name = node,
                           .uid = (*node_obj)["metadata"].value("uid", std::string())};
  Heartbeat hb;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = heartbeats_.find(node);
    if (it == heartbeats_.end()) {
      it = heartbeats_.emplace(node, Heartbeat{HeartbeatOf(*inv_obj), Clock::now(), {}}).first;
    }
    hb = it->second;
  }
  const auto age = Clock::now() - hb.seen;
  if (age > options_.heartbeat_timeout) {
    return Withdraw(node, ctx,
                    StrCat("no plugin heartbeat for ", static_cast<int>(Seconds(age)),
                           " s (timeout ", options_.heartbeat_timeout.count() / 1000,
                           " s); last heartbeatTime ", hb.value.empty() ? "never" : hb.value));
  }
  if (hb.wiped) {
    spdlog::debug("node {}: waiting for a plugin heartbeat before republishing", node);
    return absl::OkStatus();
  }

  absl::StatusOr<api::GpuInventory> inventory =
      api::ParseGpuInventory(InventoryFromCache(*inv_obj));
  if (!inventory.ok()) {
    metrics_.PublishError("inventory");
    Warn(node_ref, "InvalidGpuInventory", std::string(inventory.status().message()));
    return absl::OkStatus();  // the next inventory update re-queues the node
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = node_policy_.find(node);
    std::shared_ptr<const api::GpuPartitionPolicySpec> now =
        it == node_policy_.end() ? nullptr : it->second;
    if (conflicted_nodes_.count(node) == 0) ctx.policy = now;  // a tie keeps the last one
  }
  // Built per sync: a modeler kept per node would hold every node's device objects (about 0.5 MB
  // for 8 MIG GPUs), and rebuilding them costs far less than writing a slice.
  NodeModeler modeler(*placer_, features_);

  NodeModelInput input{.inventory = &inventory->spec, .policy = ctx.policy.get(), .allocated = {}};
  for (const api::Json& claim : claims_->ByIndex("pool", node)) {
    for (AllocatedDevice& a : AllocatedDevicesOf(claim, options_.driver)) {
      if (a.pool == node) input.allocated.push_back(std::move(a));
    }
  }
  absl::StatusOr<NodeModel> model = modeler.Build(input);
  if (!model.ok()) {
    metrics_.PublishError("model");
    Warn(node_ref, "GpuModelError", std::string(model.status().message()));
    return absl::OkStatus();
  }
  for (const std::string& w : model->warnings) {
    events_.Record(node_ref, "Warning", "PartitionPolicyNotApplied", w);
    spdlog::debug("node {}: {}", node, w);
  }
  if (!features_.consumable_capacity && ctx.policy != nullptr) {
    for (const api::GpuPolicy& p : ctx.policy->gpus) {
      if (p.mode == api::PartitionMode::kMps || p.mode == api::PartitionMode::kTimeSlice) {
        events_.Record(node_ref, "Warning", "ConsumableCapacityOff",
                       "DRAConsumableCapacity is not served by this cluster: MPS and time-slice "
                       "GPUs are published as fixed share devices (shares.maxShares each, 4 if "
                       "unset) instead of one device with consumable memory and compute");
        break;
      }
    }
  }

  const partitioner::SliceLimits limits = partitioner::SliceLimits::ForFeatures(features_);
  absl::StatusOr<std::vector<api::ResourceSliceSpec>> slices = partitioner::SplitIntoSlices(
      model->devices, {.driver = options_.driver, .pool = node, .node_name = node, .generation = 0},
      limits);
  if (!slices.ok()) {
    metrics_.PublishError("invalid-pool");
    Warn(node_ref, "InvalidPool",
         StrCat("not published (the previous slices stay): ", slices.status().message()));
    return absl::OkStatus();
  }
  const PoolTarget target{.node = node, .node_uid = node_ref.uid, .driver = options_.driver};
  PoolPlan plan = PlanPool(target, *slices, StoredSlices(node));
  if (absl::Status s = Execute(node, plan); !s.ok()) {
    metrics_.PublishError("api");
    return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  ctx.published = true;
  return absl::OkStatus();
}

absl::Status Controller::Execute(const std::string& node, const PoolPlan& plan) {
  if (plan.applies.empty() && plan.deletes.empty()) return absl::OkStatus();
  const auto first = Clock::now();
  int applied = 0;
  for (std::size_t i = 0; i < plan.applies.size(); ++i) {
    const api::Json& object = plan.applies[i];
    const std::string name = object["metadata"]["name"];
    BeginWrite(name);
    absl::Cleanup done = [&] { EndWrite(name); };
    // Create and update (PUT with the stored resourceVersion) rather than server-side apply:
    // the same ownership (fieldManager), optimistic concurrency, and a fraction of the API
    // server's work for slices of 64 devices (measured: docs/controller.md). A create that finds
    // the name taken (our own slice the informer has not shown yet) is applied instead.
    // The answer's spec is skipped once the server has been seen to keep every gated field this
    // slice uses (it is otherwise read to find dropped ones, below).
    const std::vector<std::string> gated = GatedFields(object["spec"]);
    bool check = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const std::string& f : gated) check = check || kept_fields_.count(f) == 0;
    }
    const kube::WriteOptions write{.field_manager = options_.field_manager,
                                   .answer_without_spec = !check};
    const bool update = object["metadata"].contains("resourceVersion");
    absl::StatusOr<api::Json> stored =
        update ? client_.UpdateSerialized(res::kResourceSlices, "", name, plan.bodies[i], write)
               : client_.CreateSerialized(res::kResourceSlices, "", plan.bodies[i], write);
    if (!update && kube::IsAlreadyExistsError(stored.status())) {
      stored = client_.Apply(res::kResourceSlices, "", object, options_.field_manager,
                             /*force=*/true, "", {.answer_without_spec = !check});
    }
    if (!stored.ok()) {
      metrics_.SliceWrites("apply", applied);
      return absl::Status(stored.status().code(),
                          StrCat("write ResourceSlice ", name, ": ", stored.status().message()));
    }
    ++applied;
    const api::Json compact = CompactWritten(object, *stored);
    Remember(node, name, &compact);
    if (!check) continue;
    const std::vector<std::string> dropped = DroppedFields(object["spec"], (*stored)["spec"]);
    if (dropped.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      kept_fields_.insert(gated.begin(), gated.end());
    } else {
      metrics_.PublishError("dropped-fields");
      Warn({.api_version = "v1", .kind = "Node", .name = node}, "FeatureGateOff",
           StrCat("the API server dropped ", StrJoin(dropped, ", "), " from ResourceSlice ", name,
                  ": DRAPartitionableDevices or DRAConsumableCapacity is off in the API server; "
                  "restart the controller after enabling it, or it re-probes at start-up"));
    }
  }
  const auto last = Clock::now();
  metrics_.SliceWrites("apply", applied);
  int deleted = 0;
  for (const StoredSlice& s : plan.deletes) {
    BeginWrite(s.name);
    absl::Cleanup done = [&] { EndWrite(s.name); };
    absl::Status st = client_.Delete(res::kResourceSlices, "", s.name,
                                     {.uid = s.uid, .resource_version = s.resource_version});
    if (!st.ok() && !kube::IsNotFoundError(st)) {
      metrics_.SliceWrites("delete", deleted);
      return absl::Status(st.code(), StrCat("delete ResourceSlice ", s.name, ": ", st.message()));
    }
    Remember(node, s.name, nullptr);
    ++deleted;
  }
  metrics_.SliceWrites("delete", deleted);
  if (plan.new_generation) {
    metrics_.GenerationBump(Seconds(last - first));
  } else {
    metrics_.SteeringReorders(plan.updated_in_place);
  }
  spdlog::info("node {}: pool generation {}{}: {} slice(s) applied, {} deleted", node,
               plan.generation, plan.new_generation ? " (new)" : "", applied, deleted);
  return absl::OkStatus();
}

absl::Status Controller::SyncPolicies() {
  struct Entry {
    api::Json object;
    api::GpuPartitionPolicy policy;  // parsed, or metadata and status only when unparseable
    absl::Status validation;
  };
  std::vector<Entry> entries;
  std::vector<api::GpuPartitionPolicy> effective;
  std::set<std::string> present;
  for (api::Json& object : policies_->List()) {
    Entry e{.object = object, .policy = {}, .validation = absl::OkStatus()};
    const std::string name = object["metadata"].value("name", std::string());
    present.insert(name);
    api::Json clean = object;
    clean["metadata"].erase("managedFields");
    absl::StatusOr<api::GpuPartitionPolicy> parsed = api::ParseGpuPartitionPolicy(clean);
    if (parsed.ok()) {
      e.policy = *parsed;
      e.validation = ValidatePolicy(*parsed);
    } else {
      e.validation = parsed.status();
      api::Decode(api::DecodeContext(), clean["metadata"], &e.policy.metadata).IgnoreError();
      if (clean.contains("status")) {
        api::Decode(api::DecodeContext(), clean["status"], &e.policy.status).IgnoreError();
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (e.validation.ok()) {
        last_valid_[name] = e.policy;
        effective.push_back(e.policy);
      } else if (auto it = last_valid_.find(name); it != last_valid_.end()) {
        effective.push_back(it->second);
      }
    }
    entries.push_back(std::move(e));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = last_valid_.begin(); it != last_valid_.end();) {
      it = present.count(it->first) == 0 ? last_valid_.erase(it) : std::next(it);
    }
  }
  std::vector<NodeLabels> nodes;
  for (const api::Json& n : nodes_->List()) {
    NodeLabels l{.name = n["metadata"].value("name", std::string()), .labels = {}};
    const api::Json labels = n["metadata"].value("labels", api::Json::object());
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      if (it->is_string()) l.labels[it.key()] = it->get<std::string>();
    }
    nodes.push_back(std::move(l));
  }
  const PolicyAssignment assignment = AssignPolicies(nodes, effective);

  // Status of every policy, written only when it changed.
  const std::string now = kube::TimeNow();
  absl::Status first_error;
  for (Entry& e : entries) {
    const std::string& name = e.policy.metadata.name;
    const api::GpuPartitionPolicyStatus status =
        PolicyStatus(e.policy, e.validation, assignment, now);
    const api::Json status_json = status;
    if (status_json == e.object.value("status", api::Json::object())) continue;
    const ObjectRef ref{.api_version = "tessera.dev/v1alpha1",
                        .kind = "GpuPartitionPolicy",
                        .name = name,
                        .uid = e.policy.metadata.uid};
    if (!e.validation.ok()) {
      Warn(
          ref, "InvalidPolicy",
          StrCat(e.validation.message(), "; the policy's last valid form (if any) stays in force"));
    }
    if (!status.conflicting_policies.empty()) {
      Warn(ref, "PolicyConflict",
           StrCat("selects the same nodes as ", StrJoin(status.conflicting_policies, ", "),
                  " with equal specificity; those nodes keep their current policy"));
    }
    const api::Json patch = {{"apiVersion", "tessera.dev/v1alpha1"},
                             {"kind", "GpuPartitionPolicy"},
                             {"metadata", {{"name", name}}},
                             {"status", status_json}};
    absl::StatusOr<api::Json> r = client_.Apply(res::kGpuPartitionPolicies, "", patch,
                                                options_.field_manager, true, "status");
    if (!r.ok() && !kube::IsNotFoundError(r.status()) && first_error.ok()) {
      first_error = absl::Status(r.status().code(), StrCat("status of GpuPartitionPolicy ", name,
                                                           ": ", r.status().message()));
    }
  }

  // Which nodes' policy changed.
  std::map<std::string, std::shared_ptr<const api::GpuPartitionPolicySpec>> specs;
  for (const api::GpuPartitionPolicy& p : effective) {
    specs[p.metadata.name] = std::make_shared<const api::GpuPartitionPolicySpec>(p.spec);
  }
  std::vector<std::string> changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, std::shared_ptr<const api::GpuPartitionPolicySpec>> next;
    for (const auto& [node, policy] : assignment.node_policy) next[node] = specs.at(policy);
    std::set<std::string> names;
    for (const auto& [n, p] : node_policy_) names.insert(n);
    for (const auto& [n, p] : next) names.insert(n);
    for (const std::string& n : names) {
      auto a = node_policy_.find(n);
      auto b = next.find(n);
      const api::GpuPartitionPolicySpec* pa = a == node_policy_.end() ? nullptr : a->second.get();
      const api::GpuPartitionPolicySpec* pb = b == next.end() ? nullptr : b->second.get();
      if ((pa == nullptr) != (pb == nullptr) || (pa != nullptr && !(*pa == *pb)))
        changed.push_back(n);
    }
    node_policy_ = std::move(next);
    conflicted_nodes_.clear();
    for (const auto& [n, tied] : assignment.node_conflicts) conflicted_nodes_.insert(n);
  }
  for (const std::string& n : changed) queue_.Add(n);
  return first_error;
}

}  // namespace tessera::controller
