// The device model: names that decode to exactly one partition, counters that admit exactly the
// valid layouts, publish order that follows the Placer, every mode, and pools that respect every
// API limit of the release they are published to.

#include "tessera/partitioner/device_model.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "reference_model.h"
#include "tessera/api/strings.h"
#include "tessera/partitioner/device_name.h"
#include "tessera/partitioner/slices.h"

namespace tessera::partitioner {
namespace {

using api::PartitionMode;

const GpuModel& Model(std::string_view key) {
  const GpuModel* m = FindBuiltinModel(key);
  EXPECT_NE(m, nullptr) << key;
  return *m;
}

api::GpuInfo Info(const GpuModel& m, int index) {
  api::GpuInfo info;
  info.index = index;
  info.uuid = StrCat("GPU-", index, "0000000-1111-2222-3333-444444444444");
  info.product = m.product_name;
  info.model = m.key;
  info.memory =
      api::Quantity::FromInt64(m.memory_mib * 1024 * 1024, api::Quantity::Format::kBinarySI);
  info.compute_capability = m.compute_capability;
  info.pci_bus_id = StrCat("0000:", 10 + index, ":00.0");
  info.mig_capable = true;
  info.mig_enabled = true;
  return info;
}

api::GpuPolicy PolicyOf(PartitionMode mode) {
  api::GpuPolicy p;
  p.mode = mode;
  return p;
}

// A node of `n` GPUs of one model, all in one mode.
struct Node {
  Node(const GpuModel& m, int n, PartitionMode mode) : policy(PolicyOf(mode)) {
    for (int i = 0; i < n; ++i) {
      infos.push_back(Info(m, i));
      states.emplace_back(m);
    }
  }
  NodeInput Input() {
    inputs.clear();
    for (const api::GpuInfo& info : infos) inputs.push_back({&info, &policy});
    return NodeInput{.states = states,
                     .gpus = inputs,
                     .driver_version = "550.54.15",
                     .cuda_driver_version = "12.4",
                     .allocated = allocated.empty() ? nullptr : &allocated};
  }
  std::vector<api::GpuInfo> infos;
  std::vector<GpuState> states;
  api::GpuPolicy policy;
  std::vector<GpuInput> inputs;
  std::set<std::string> allocated;
};

// The devices of `node` from a fresh modeler with the tessera policy.
absl::StatusOr<NodeDevices> BuildNode(Node& node, ApiFeatures features = {}) {
  Placer placer(Policy::kTessera);
  DeviceModeler modeler(placer, features);
  return modeler.Build(node.Input());
}

std::vector<std::string> Names(const NodeDevices& d) {
  std::vector<std::string> out;
  for (const auto& dev : d.devices) out.push_back(dev->name);
  return out;
}

const api::Device* Find(const NodeDevices& d, std::string_view name) {
  for (const auto& dev : d.devices) {
    if (dev->name == name) return dev.get();
  }
  return nullptr;
}

std::string Str(const api::Device& d, const std::string& key) {
  auto it = d.attributes.find(key);
  if (it == d.attributes.end()) return "<none>";
  if (it->second.string_value) return *it->second.string_value;
  if (it->second.version_value) return *it->second.version_value;
  if (it->second.int_value) return std::to_string(*it->second.int_value);
  return "<bool>";
}

// ---------------------------------------------------------------------------------------------
// Names

TEST(DeviceNameTest, EveryPartitionOfEveryModelRoundTrips) {
  int checked = 0;
  for (const GpuModel& m : BuiltinModels()) {
    for (int gpu : {0, 7, 15}) {
      for (std::size_t pi = 0; pi < m.profiles.size(); ++pi) {
        absl::StatusOr<std::string> token = ProfileToken(m.profiles[pi].name);
        ASSERT_TRUE(token.ok()) << token.status();
        for (const Placement& pl : m.profiles[pi].placements) {
          for (std::optional<ShareKind> share :
               {std::optional<ShareKind>(), std::optional(ShareKind::kMps),
                std::optional(ShareKind::kTimeSlice)}) {
            for (int slot : {-1, 0, 11}) {
              if (!share && slot >= 0) continue;
              DeviceName n{.gpu = gpu,
                           .mig = DeviceName::Mig{*token, pl.start},
                           .share = share,
                           .slot = slot};
              const std::string text = n.ToString();
              ASSERT_LE(text.size(), 63u) << text;
              absl::StatusOr<DeviceName> back = DeviceName::Parse(text);
              ASSERT_TRUE(back.ok()) << text << ": " << back.status();
              EXPECT_EQ(*back, n) << text;
              absl::StatusOr<ResolvedDevice> r = ResolveDeviceName(text, m);
              ASSERT_TRUE(r.ok()) << r.status();
              EXPECT_EQ(r->gpu, gpu);
              EXPECT_EQ(r->profile, static_cast<int>(pi)) << text;
              EXPECT_EQ(r->placement, pl) << text;
              EXPECT_EQ(r->share, share);
              EXPECT_EQ(r->slot, slot);
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
  EXPECT_EQ(*ProfileToken("1g.10gb+me"), "1g10gb-me");
  EXPECT_EQ(DeviceName{.gpu = 3}.ToString(), "gpu-3");
  EXPECT_EQ(DeviceName::Parse("gpu-1-mig-3g40gb-p4-mps-s2")->ToString(),
            "gpu-1-mig-3g40gb-p4-mps-s2");
}

TEST(DeviceNameTest, DistinctPartitionsGetDistinctNames) {
  std::set<std::string> names;
  std::size_t partitions = 0;
  for (const GpuModel& m : BuiltinModels()) {
    names.clear();
    partitions = 0;
    for (int gpu = 0; gpu < 8; ++gpu) {
      names.insert(DeviceName{.gpu = gpu}.ToString());
      ++partitions;
      for (const GiProfile& p : m.profiles) {
        for (const Placement& pl : p.placements) {
          names.insert(
              DeviceName{.gpu = gpu, .mig = DeviceName::Mig{*ProfileToken(p.name), pl.start}}
                  .ToString());
          ++partitions;
        }
      }
    }
    EXPECT_EQ(names.size(), partitions) << m.key;
  }
}

TEST(DeviceNameTest, NonCanonicalOrForeignNamesAreRefused) {
  for (const char* bad : {"",
                          "gpu",
                          "gpu-",
                          "GPU-0",
                          "gpu-01",
                          "gpu--1",
                          "gpu-0-",
                          "gpu-0-mig",
                          "gpu-0-mig-p0",
                          "gpu-0-mig-1g10gb",
                          "gpu-0-mig-1g10gb-p06",
                          "gpu-0-mig-1g10gb-p0-x",
                          "gpu-0-mps-s",
                          "gpu-0-mps-s01",
                          "gpu-0-ts-2",
                          "gpu-0-mps-mps",
                          "mig-1g.10gb-0",
                          "gpu-0-mig-mps-p0",
                          "gpu-1234567",
                          "gpu-0-mig-1g10gb-p0-mps-s1-s2"}) {
    EXPECT_FALSE(DeviceName::Parse(bad).ok()) << bad;
  }
  EXPECT_FALSE(DeviceName::Parse(std::string(64, 'a')).ok());
  // Profile names whose token would be ambiguous are refused when the model is built.
  EXPECT_FALSE(ProfileToken("1g+mps").ok());
  EXPECT_FALSE(ProfileToken("1g+p4").ok());
  EXPECT_FALSE(ProfileToken("1g_10gb").ok());
  // Resolution checks the placement against the model.
  EXPECT_FALSE(ResolveDeviceName("gpu-0-mig-1g10gb-p7", Model("h100-80gb")).ok());
  EXPECT_FALSE(ResolveDeviceName("gpu-0-mig-4g40gb-p4", Model("h100-80gb")).ok());
  EXPECT_FALSE(ResolveDeviceName("gpu-0-mig-1g5gb-p0", Model("h100-80gb")).ok());
  EXPECT_TRUE(ResolveDeviceName("gpu-0-mig-1g20gb-p6", Model("h100-80gb")).ok());
}

// ---------------------------------------------------------------------------------------------
// Counters

// Per device, what it consumes of the one counter set, as integers in the set's order.
struct CounterView {
  std::vector<std::string> names;
  std::vector<std::int64_t> values;
  std::map<std::string, std::vector<std::int64_t>> use;  // device -> amounts
};

CounterView ViewOf(const NodeDevices& d) {
  CounterView v;
  EXPECT_EQ(d.counter_sets.size(), 1u);
  for (const auto& [name, c] : d.counter_sets[0]->counters) {
    v.names.push_back(name);
    v.values.push_back(c.value.Value());
  }
  for (const auto& dp : d.devices) {
    const api::Device& dev = *dp;
    std::vector<std::int64_t> amounts(v.names.size(), 0);
    EXPECT_EQ(dev.consumes_counters.size(), 1u) << dev.name;
    for (const auto& [name, c] : dev.consumes_counters[0].counters) {
      const auto at = std::find(v.names.begin(), v.names.end(), name);
      EXPECT_NE(at, v.names.end()) << dev.name << " consumes unknown " << name;
      amounts[at - v.names.begin()] += c.value.Value();
    }
    v.use[dev.name] = amounts;
  }
  return v;
}

void EnumerateLayouts(const GpuModel& m, GpuState& state, std::set<Layout>& seen) {
  for (std::size_t pi = 0; pi < m.profiles.size(); ++pi) {
    for (const Placement& pl : m.profiles[pi].placements) {
      if (!state.CheckInstance(int(pi), pl).ok()) continue;
      ASSERT_TRUE(state.AddInstance(int(pi), pl, "").ok());
      Layout l;
      for (const Instance& i : state.instances()) l.emplace_back(i.profile, i.placement.start);
      std::sort(l.begin(), l.end());
      if (seen.insert(l).second) EnumerateLayouts(m, state, seen);
      ASSERT_TRUE(state.RemoveInstance(pl).ok());
    }
  }
}

class CounterExactnessTest : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

// For every reachable layout and every placement of every profile, the scheduler's counter check
// (consumed + need <= value for each counter) admits the placement exactly when the reference
// model says the extended layout is valid; the whole GPU fits exactly when nothing is allocated.
TEST_P(CounterExactnessTest, CountersAdmitExactlyTheValidLayouts) {
  const auto& [key, in_own_slice] = GetParam();
  const GpuModel& m = Model(key);
  Node node(m, 1, PartitionMode::kMigDynamic);
  Placer placer(Policy::kFirstFit);
  ApiFeatures features;
  features.counters_in_own_slice = in_own_slice;
  DeviceModeler modeler(placer, features);
  absl::StatusOr<NodeDevices> d = modeler.Build(node.Input());
  ASSERT_TRUE(d.ok()) << d.status();
  const CounterView v = ViewOf(*d);
  EXPECT_LE(v.names.size(), 32u);

  std::set<Layout> layouts;
  GpuState state(m);
  EnumerateLayouts(m, state, layouts);
  layouts.insert(Layout{});
  ASSERT_GT(layouts.size(), 10u);
  auto device_of = [&](int profile, int start) {
    return DeviceName{.gpu = 0,
                      .mig = DeviceName::Mig{*ProfileToken(m.profiles[profile].name), start}}
        .ToString();
  };
  std::size_t checks = 0;
  for (const Layout& layout : layouts) {
    std::vector<std::int64_t> used(v.names.size(), 0);
    for (const auto& [profile, start] : layout) {
      const auto& u = v.use.at(device_of(profile, start));
      for (std::size_t k = 0; k < used.size(); ++k) used[k] += u[k];
    }
    auto fits = [&](const std::vector<std::int64_t>& need) {
      for (std::size_t k = 0; k < used.size(); ++k) {
        if (used[k] + need[k] > v.values[k]) return false;
      }
      return true;
    };
    // The layout itself never exceeds a counter.
    ASSERT_TRUE(fits(std::vector<std::int64_t>(used.size(), 0)));
    for (std::size_t pi = 0; pi < m.profiles.size(); ++pi) {
      for (const Placement& pl : m.profiles[pi].placements) {
        Layout extended = layout;
        extended.emplace_back(int(pi), pl.start);
        std::sort(extended.begin(), extended.end());
        const bool valid = ReferenceViolation(m, extended).empty();
        ASSERT_EQ(fits(v.use.at(device_of(int(pi), pl.start))), valid)
            << m.key << ": layout of " << layout.size() << " + " << m.profiles[pi].name << "@"
            << pl.start;
        ++checks;
      }
    }
    EXPECT_EQ(fits(v.use.at("gpu-0")), layout.empty());
  }
  EXPECT_GT(checks, 500u);
}

INSTANTIATE_TEST_SUITE_P(AllModels, CounterExactnessTest,
                         ::testing::Combine(::testing::Values("a100-40gb", "a100-80gb", "a30-24gb",
                                                              "h100-80gb", "h100-94gb",
                                                              "h200-141gb", "b200"),
                                            ::testing::Bool()),
                         [](const auto& param_info) {
                           const auto& param = param_info.param;
                           std::string name =
                               std::get<0>(param) + (std::get<1>(param) ? "_own_slice" : "_inline");
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(CounterPlanTest, FullDetailAddsInformationalCountersThatNeverBind) {
  const GpuModel& m = Model("a100-40gb");
  const CounterPlan full = CounterPlan::For(m, CounterDetail::kFull);
  const CounterPlan binding = CounterPlan::For(m, CounterDetail::kBindingOnly);
  std::map<std::string, std::int64_t> values;
  for (const auto& e : full.counters) values[e.name] = e.value;
  EXPECT_EQ(values["memory-slice-0"], 1);
  EXPECT_EQ(values["compute-slices"], 7);
  EXPECT_EQ(values["media-extensions"], 1);
  // Seven 1g.5gb use 98 SMs, as do 7g.40gb and 4g+3g: the most any layout uses.
  EXPECT_EQ(values["multiprocessors"], 98);
  EXPECT_EQ(values["ofa-engines"], 1);
  EXPECT_EQ(values.count("encoders"), 0u);  // A100 MIG has no NVENC: no zero counter
  EXPECT_EQ(binding.counters.size(), 10u);  // 8 slices, compute, media
  EXPECT_GT(full.counters.size(), binding.counters.size());
}

TEST(CounterPlanTest, CountLimitsBelowThePlacementsGetTheirOwnCounter) {
  GpuModel m = Model("a100-40gb");
  m.key = "a100-40gb-limited";
  m.profiles[m.ProfileIndex("1g")].max_instances = 4;  // 7 placements, at most 4
  const CounterPlan plan = CounterPlan::For(m, CounterDetail::kBindingOnly);
  auto it = std::find_if(plan.counters.begin(), plan.counters.end(),
                         [](const CounterPlan::Entry& e) { return e.name == "instances-1g5gb"; });
  ASSERT_NE(it, plan.counters.end());
  EXPECT_EQ(it->value, 4);
}

TEST(DeviceModelTest, BeforeR510FourGIsNotPublished) {
  GpuModel m = Model("a100-40gb");
  m.four_and_three_coexist = false;
  Node node(m, 1, PartitionMode::kMigDynamic);
  absl::StatusOr<NodeDevices> d = BuildNode(node);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(Find(*d, "gpu-0-mig-4g20gb-p0"), nullptr);
  EXPECT_NE(Find(*d, "gpu-0-mig-3g20gb-p4"), nullptr);
  ASSERT_EQ(d->warnings.size(), 1u);
  EXPECT_NE(d->warnings[0].find("R510"), std::string::npos);
}

TEST(DeviceModelTest, WholeModeGpusComeBeforeMigDynamicGpusForWholeClaims) {
  Node node(Model("a100-40gb"), 3, PartitionMode::kMigDynamic);
  api::GpuPolicy whole = PolicyOf(PartitionMode::kWhole);
  NodeInput in = node.Input();
  node.inputs[2].policy = &whole;  // GPU 2 whole, GPUs 0 and 1 mig-dynamic
  Placer placer(Policy::kTessera);
  DeviceModeler modeler(placer, ApiFeatures{});
  absl::StatusOr<NodeDevices> d = modeler.Build(in);
  ASSERT_TRUE(d.ok()) << d.status();
  std::vector<std::string> wholes;
  for (const std::string& name : Names(*d)) {
    if (name == "gpu-0" || name == "gpu-1" || name == "gpu-2") wholes.push_back(name);
  }
  EXPECT_EQ(wholes, (std::vector<std::string>{"gpu-2", "gpu-0", "gpu-1"}));
}

TEST(DeviceModelTest, MigModeDisabledPublishesTheWholeGpuWithAWarning) {
  Node node(Model("h100-80gb"), 2, PartitionMode::kMigDynamic);
  node.infos[1].mig_enabled = false;
  absl::StatusOr<NodeDevices> d = BuildNode(node);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_NE(Find(*d, "gpu-0-mig-1g10gb-p0"), nullptr);
  EXPECT_NE(Find(*d, "gpu-1"), nullptr);
  for (const std::string& name : Names(*d)) {
    EXPECT_EQ(name.rfind("gpu-1-", 0), std::string::npos) << name << ": MIG mode is off on GPU 1";
  }
  ASSERT_EQ(d->warnings.size(), 1u);
  EXPECT_NE(d->warnings[0].find("GPU 1 "), std::string::npos) << d->warnings[0];
  EXPECT_NE(d->warnings[0].find("needs MIG mode enabled on the GPU"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Order

// With every device published, the scheduler's first fit (the first device of the requested
// profile whose placement still fits) picks exactly what the Placer would place, for every policy
// and over random occupancies of a node.
TEST(DeviceModelTest, FirstFitOverThePublishedOrderIsThePlacersChoice) {
  std::mt19937 rng(7);
  for (Policy policy :
       {Policy::kFirstFit, Policy::kNameSorted, Policy::kBestFit, Policy::kTessera}) {
    Placer placer(policy);
    DeviceModeler modeler(placer, ApiFeatures{});
    for (int round = 0; round < 150; ++round) {
      Node node(Model(round % 2 ? "h100-80gb" : "a100-40gb"), 12, PartitionMode::kMigDynamic);
      const GpuModel& m = node.states[0].model();
      for (int k = 0; k < 30; ++k) {  // random occupancy
        const int g = int(rng() % node.states.size());
        const int p = int(rng() % m.profiles.size());
        const auto& pls = m.profiles[p].placements;
        (void)node.states[g].AddInstance(p, pls[rng() % pls.size()], "c");
      }
      absl::StatusOr<NodeDevices> d = modeler.Build(node.Input());
      ASSERT_TRUE(d.ok()) << d.status();
      for (const GiProfile& profile : m.profiles) {
        const Request request{.kind = Request::Kind::kMig, .profile = profile.size_class};
        absl::StatusOr<Choice> want = placer.Place(node.states, request);
        std::optional<std::string> first;
        for (const auto& dp : d->devices) {
          const api::Device& dev = *dp;
          absl::StatusOr<ResolvedDevice> r = ResolveDeviceName(dev.name, m);
          ASSERT_TRUE(r.ok());
          if (r->profile < 0 || r->share || m.profiles[r->profile].size_class != profile.size_class)
            continue;
          if (node.states[r->gpu].CheckInstance(r->profile, r->placement).ok()) {
            first = dev.name;
            break;
          }
        }
        ASSERT_EQ(first.has_value(), want.ok()) << PolicyName(policy) << " " << profile.name;
        if (!want.ok()) continue;
        const std::string expected = DeviceName{
            .gpu = want->gpu,
            .mig = DeviceName::Mig{
                *ProfileToken(profile.name),
                want->placement.start}}.ToString();
        EXPECT_EQ(*first, expected)
            << PolicyName(policy) << " " << profile.name << " round " << round;
      }
    }
  }
}

TEST(DeviceModelTest, SmallerProfilesComeFirstAndTheWholeGpuLast) {
  Node node(Model("h100-80gb"), 2, PartitionMode::kMigDynamic);
  absl::StatusOr<NodeDevices> d = BuildNode(node);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->devices.size(), 2u * 26u);  // 25 placements + the whole GPU, per GPU
  int last_compute = 0;
  for (std::size_t i = 0; i + 2 < d->devices.size(); ++i) {
    const api::Device& dev = *d->devices[i];
    ASSERT_EQ(Str(dev, "type"), "mig") << dev.name;
    const int compute =
        int(node.states[0].model().FindProfile(Str(dev, "profile"))->compute_slices);
    EXPECT_GE(compute, last_compute) << dev.name;
    last_compute = compute;
  }
  EXPECT_EQ(Str(*d->devices[d->devices.size() - 2], "type"), "gpu");
  EXPECT_EQ(Str(*d->devices.back(), "type"), "gpu");
}

// ---------------------------------------------------------------------------------------------
// Modes and attributes

TEST(DeviceModelTest, MigDeviceCarriesItsIdentityCapacityAndCounters) {
  Node node(Model("h100-80gb"), 1, PartitionMode::kMigDynamic);
  Placer placer(Policy::kTessera);
  DeviceModeler modeler(placer, ApiFeatures{});
  absl::StatusOr<NodeDevices> d = modeler.Build(node.Input());
  ASSERT_TRUE(d.ok());
  const api::Device* dev = Find(*d, "gpu-0-mig-3g40gb-p4");
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(Str(*dev, "type"), "mig");
  EXPECT_EQ(Str(*dev, "profile"), "3g.40gb");
  EXPECT_EQ(Str(*dev, "profileClass"), "3g");
  EXPECT_EQ(Str(*dev, "placementStart"), "4");
  EXPECT_EQ(Str(*dev, "placementSize"), "4");
  EXPECT_EQ(Str(*dev, "parentUUID"), node.infos[0].uuid);
  EXPECT_EQ(Str(*dev, "uuid"), "<none>");  // not created yet
  EXPECT_EQ(Str(*dev, "cudaComputeCapability"), "9.0.0");
  EXPECT_EQ(Str(*dev, "driverVersion"), "550.54.15");
  EXPECT_EQ(Str(*dev, "cudaDriverVersion"), "12.4.0");
  EXPECT_EQ(Str(*dev, "resource.kubernetes.io/pciBusID"), "0000:10:00.0");
  EXPECT_EQ(dev->capacity.at("memory").value.ToString(), "40448Mi");
  EXPECT_EQ(dev->capacity.at("multiprocessors").value.ToString(), "60");
  ASSERT_EQ(dev->consumes_counters.size(), 1u);
  const auto& c = dev->consumes_counters[0];
  EXPECT_EQ(c.counter_set, "gpu-0-counters");
  for (int k = 0; k < 8; ++k) {
    EXPECT_EQ(c.counters.count(StrCat("memory-slice-", k)), k >= 4 ? 1u : 0u) << k;
  }
  EXPECT_EQ(c.counters.at("compute-slices").value.ToString(), "3");
  EXPECT_FALSE(dev->allow_multiple_allocations.has_value());

  // An existing instance's UUID is published.
  node.infos[0].mig_instances.push_back({.profile = "3g.40gb",
                                         .placement = {4, 4},
                                         .gpu_instance_id = 2,
                                         .compute_instance_id = 0,
                                         .uuid = "MIG-abc",
                                         .owner_claim = {},
                                         .created_by_tessera = true});
  ASSERT_TRUE(
      node.states[0].AddInstance(node.states[0].model().ProfileIndex("3g"), {4, 4}, "claim").ok());
  d = modeler.Build(node.Input());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(Str(*Find(*d, "gpu-0-mig-3g40gb-p4"), "uuid"), "MIG-abc");
}

TEST(SemverTest, NvidiaVersionStringsBecomeSemanticVersions) {
  EXPECT_EQ(SemverFromDotted("535.104.05"), "535.104.5");
  EXPECT_EQ(SemverFromDotted("8.0"), "8.0.0");
  EXPECT_EQ(SemverFromDotted("10"), "10.0.0");
  EXPECT_EQ(SemverFromDotted("550.54.15"), "550.54.15");
  EXPECT_EQ(SemverFromDotted(""), "");
  EXPECT_EQ(SemverFromDotted("1.2.3.4"), "");
  EXPECT_EQ(SemverFromDotted("12.x"), "");
  EXPECT_EQ(SemverFromDotted("1..2"), "");
}

TEST(DeviceModelTest, WholeModePublishesOneDevicePerGpuWithoutCounters) {
  Node node(Model("a100-80gb"), 4, PartitionMode::kWhole);
  absl::StatusOr<NodeDevices> d = BuildNode(node);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->devices.size(), 4u);
  EXPECT_TRUE(d->counter_sets.empty());
  for (const auto& dp : d->devices) {
    const api::Device& dev = *dp;
    EXPECT_EQ(Str(dev, "type"), "gpu");
    EXPECT_EQ(dev.capacity.at("memory").value.ToString(), "80Gi");
    EXPECT_TRUE(dev.consumes_counters.empty());
    EXPECT_EQ(Str(dev, "uuid"), Str(dev, "parentUUID"));
  }
}

TEST(DeviceModelTest, MpsWithConsumableCapacityIsOneShareableDevicePerGpu) {
  Node node(Model("h100-80gb"), 2, PartitionMode::kMps);
  node.policy.shares = api::ShareLimits{
      .max_shares = 8, .min_memory = api::Quantity::Parse("2Gi").value(), .min_compute_percent = 5};
  absl::StatusOr<NodeDevices> d = BuildNode(node);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->devices.size(), 2u);
  const api::Device* dev = Find(*d, "gpu-1-mps");
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(Str(*dev, "type"), "mps");
  EXPECT_EQ(dev->allow_multiple_allocations, true);
  const auto& mem = dev->capacity.at("memory");
  EXPECT_EQ(mem.value.ToString(), "81559Mi");
  ASSERT_TRUE(mem.request_policy && mem.request_policy->valid_range);
  EXPECT_EQ(mem.request_policy->valid_range->min.ToString(), "2Gi");
  EXPECT_EQ(mem.request_policy->valid_range->step->ToString(), "128Mi");
  EXPECT_EQ(mem.request_policy->default_value->ToString(),
            "10112Mi");  // 1/8, rounded down to a step
  const auto& compute = dev->capacity.at("compute");
  EXPECT_EQ(compute.value.ToString(), "100");
  EXPECT_EQ(compute.request_policy->default_value->ToString(), "12");
  EXPECT_EQ(compute.request_policy->valid_range->min.ToString(), "5");
  EXPECT_EQ(dev->capacity.at("clients").value.ToString(), "8");
  std::vector<api::ResourceSliceSpec> slices =
      SplitIntoSlices(*d, {"gpu.tessera.dev", "node-a", "node-a", 1},
                      SliceLimits::ForFeatures(ApiFeatures{}))
          .value();
  EXPECT_EQ(slices.size(), 1u);
}

TEST(DeviceModelTest, WithoutConsumableCapacitySharesAreFixedDevices) {
  Node node(Model("a100-40gb"), 2, PartitionMode::kTimeSlice);
  absl::StatusOr<NodeDevices> d = BuildNode(node, ApiFeatures::Defaults(35));
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->devices.size(), 8u);
  const api::Device* dev = Find(*d, "gpu-0-ts-s3");
  ASSERT_NE(dev, nullptr);
  EXPECT_FALSE(dev->allow_multiple_allocations.has_value());
  EXPECT_EQ(dev->capacity.at("memory").value.ToString(), "10Gi");
  EXPECT_EQ(Str(*dev, "shareCount"), "4");
  for (const auto& x : d->devices)
    EXPECT_FALSE(x->capacity.at("memory").request_policy.has_value());
}

TEST(DeviceModelTest, DynamicMigWithMpsPublishesShareableInstancesThatConsumeTheirPlacement) {
  Node node(Model("a100-80gb"), 1, PartitionMode::kMigDynamic);
  node.policy.instance_sharing = api::SharingStrategy::kMps;
  node.policy.allowed_profiles = {"3g", "7g"};
  absl::StatusOr<NodeDevices> d = BuildNode(node);
  ASSERT_TRUE(d.ok());
  const std::vector<std::string> names = Names(*d);
  // tessera fills the upper half first (what FGD prefers on an empty GPU); shares follow the same
  // order.
  EXPECT_EQ(names,
            (std::vector<std::string>{"gpu-0-mig-3g40gb-p4", "gpu-0-mig-3g40gb-p0",
                                      "gpu-0-mig-3g40gb-p4-mps", "gpu-0-mig-3g40gb-p0-mps",
                                      "gpu-0-mig-7g80gb-p0", "gpu-0-mig-7g80gb-p0-mps", "gpu-0"}));
  const api::Device* shared = Find(*d, "gpu-0-mig-3g40gb-p4-mps");
  EXPECT_EQ(shared->allow_multiple_allocations, true);
  EXPECT_EQ(shared->consumes_counters, Find(*d, "gpu-0-mig-3g40gb-p4")->consumes_counters);
  EXPECT_EQ(shared->capacity.at("memory").value.ToString(), "40192Mi");
  EXPECT_EQ(Str(*shared, "type"), "mps");
  EXPECT_EQ(Str(*shared, "profile"), "3g.40gb");

  // Without consumable capacity the combination cannot be expressed: exclusive devices only.
  d = BuildNode(node, ApiFeatures{.partitionable_devices = true,
                                  .consumable_capacity = false,
                                  .counters_in_own_slice = true});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->devices.size(), 4u);
  ASSERT_EQ(d->warnings.size(), 1u);
  EXPECT_NE(d->warnings[0].find("DRAConsumableCapacity"), std::string::npos);
}

TEST(DeviceModelTest, StaticMigPublishesTheExistingInstances) {
  Node node(Model("a100-40gb"), 1, PartitionMode::kMigStatic);
  const GpuModel& m = node.states[0].model();
  ASSERT_TRUE(node.states[0].AddInstance(m.ProfileIndex("3g"), {4, 4}, "").ok());
  ASSERT_TRUE(node.states[0].AddInstance(m.ProfileIndex("1g"), {0, 1}, "").ok());
  ASSERT_TRUE(node.states[0].AddInstance(m.ProfileIndex("2g"), {2, 2}, "").ok());
  absl::StatusOr<NodeDevices> d = BuildNode(node);
  ASSERT_TRUE(d.ok());
  const std::vector<std::string> names = Names(*d);
  EXPECT_EQ(names, (std::vector<std::string>{"gpu-0-mig-1g5gb-p0", "gpu-0-mig-2g10gb-p2",
                                             "gpu-0-mig-3g20gb-p4"}));
  EXPECT_TRUE(d->counter_sets.empty());

  // Shared with time-slicing on a cluster without consumable capacity: 4 fixed shares each.
  node.policy.instance_sharing = api::SharingStrategy::kTimeSlicing;
  d = BuildNode(node, ApiFeatures::Defaults(34));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->devices.size(), 12u);
  EXPECT_NE(Find(*d, "gpu-0-mig-2g10gb-p2-ts-s3"), nullptr);
}

TEST(DeviceModelTest, ModeChangesWaitUntilTheGpuIsIdle) {
  Node node(Model("h100-80gb"), 2, PartitionMode::kMigDynamic);
  ASSERT_TRUE(
      node.states[1]
          .AddShare(
              {.kind = ShareKind::kMps, .owner = "c1", .memory_mib = 1024, .compute_percent = 10},
              {})
          .ok());
  Placer placer(Policy::kTessera);
  DeviceModeler modeler(placer, ApiFeatures{});
  absl::StatusOr<NodeDevices> d = modeler.Build(node.Input());
  ASSERT_TRUE(d.ok());
  EXPECT_NE(Find(*d, "gpu-1-mps"), nullptr);
  EXPECT_EQ(Find(*d, "gpu-1-mig-1g10gb-p0"), nullptr);
  EXPECT_EQ(Find(*d, "gpu-1"), nullptr);
  EXPECT_NE(Find(*d, "gpu-0-mig-1g10gb-p0"), nullptr);
  ASSERT_EQ(d->warnings.size(), 1u);
  EXPECT_NE(d->warnings[0].find("GPU 1"), std::string::npos);
  EXPECT_EQ(d->counter_sets.size(), 1u);

  // A whole-mode GPU with MIG instances publishes the instances, not the GPU.
  Node whole(Model("h100-80gb"), 1, PartitionMode::kWhole);
  ASSERT_TRUE(whole.states[0].AddInstance(0, {3, 1}, "c").ok());
  d = modeler.Build(whole.Input());
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->devices.size(), 1u);
  EXPECT_EQ(d->devices[0]->name, "gpu-0-mig-1g10gb-p3");
}

TEST(DeviceModelTest, AllocatedDevicesStayPublishedWhenThePolicyDropsThem) {
  Node node(Model("h100-80gb"), 1, PartitionMode::kMigDynamic);
  node.policy.allowed_profiles = {"1g"};
  node.allocated = {"gpu-0-mig-3g40gb-p0", "not-ours", "gpu-9"};
  absl::StatusOr<NodeDevices> d = BuildNode(node);
  ASSERT_TRUE(d.ok());
  const api::Device* kept = Find(*d, "gpu-0-mig-3g40gb-p0");
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->consumes_counters.size(), 1u);  // still counted against the GPU
  EXPECT_EQ(Find(*d, "gpu-0-mig-3g40gb-p4"), nullptr);
  EXPECT_EQ(d->devices.size(), 7u + 1u + 1u);
}

TEST(DeviceModelTest, WithoutPartitionableDevicesMigDynamicFallsBackSafely) {
  Node node(Model("a100-40gb"), 2, PartitionMode::kMigDynamic);
  ASSERT_TRUE(node.states[1].AddInstance(0, {0, 1}, "c").ok());
  absl::StatusOr<NodeDevices> d = BuildNode(node, ApiFeatures::Defaults(35));
  ASSERT_TRUE(d.ok());
  const std::vector<std::string> names = Names(*d);
  EXPECT_EQ(names, (std::vector<std::string>{"gpu-1-mig-1g5gb-p0", "gpu-0"}));
  EXPECT_TRUE(d->counter_sets.empty());
  EXPECT_EQ(d->warnings.size(), 2u);
}

TEST(DeviceModelTest, UnchangedDevicesAreReusedAndChangedOnesRebuilt) {
  Node node(Model("a100-40gb"), 2, PartitionMode::kMigDynamic);
  Placer placer(Policy::kTessera);
  DeviceModeler modeler(placer, ApiFeatures{});
  NodeDevices first = modeler.Build(node.Input()).value();
  NodeDevices again = modeler.Build(node.Input()).value();
  ASSERT_EQ(first.devices.size(), again.devices.size());
  for (std::size_t i = 0; i < first.devices.size(); ++i)
    EXPECT_EQ(first.devices[i], again.devices[i]);
  EXPECT_EQ(first.counter_sets[0], again.counter_sets[0]);

  node.policy.mode = PartitionMode::kMps;  // a policy change rebuilds every device of the GPUs
  NodeDevices mps = modeler.Build(node.Input()).value();
  ASSERT_EQ(mps.devices.size(), 2u);
  EXPECT_EQ(mps.devices[0]->name, "gpu-0-mps");
  EXPECT_TRUE(mps.counter_sets.empty());

  node.policy.mode = PartitionMode::kMigDynamic;
  node.infos[1].product = "NVIDIA A100-PCIE-40GB";  // so does a changed GPU, and only that GPU
  NodeDevices renamed = modeler.Build(node.Input()).value();
  EXPECT_EQ(Str(*Find(renamed, "gpu-1"), "productName"), "NVIDIA A100-PCIE-40GB");
  EXPECT_EQ(Str(*Find(renamed, "gpu-0"), "productName"), "NVIDIA A100-SXM4-40GB");
}

TEST(DeviceModelTest, InputErrorsNameTheProblem) {
  Node node(Model("a100-40gb"), 2, PartitionMode::kWhole);
  node.infos[1].index = 0;
  absl::StatusOr<NodeDevices> d = BuildNode(node);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("GPU index 0"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Slices and limits

TEST(SlicesTest, EightH100sInMigDynamicSplitByRelease) {
  for (int minor : {34, 35, 36, 37}) {
    Node node(Model("h100-80gb"), 8, PartitionMode::kMigDynamic);
    node.policy.instance_sharing = api::SharingStrategy::kMps;
    Placer placer(Policy::kTessera);
    ApiFeatures features = ApiFeatures::Defaults(minor);
    features.partitionable_devices = true;  // as an admin who enabled the gate would have it
    DeviceModeler modeler(placer, features);
    absl::StatusOr<NodeDevices> d = modeler.Build(node.Input());
    ASSERT_TRUE(d.ok());
    const SliceLimits limits = SliceLimits::ForFeatures(features);
    absl::StatusOr<std::vector<api::ResourceSliceSpec>> slices =
        SplitIntoSlices(*d, {"gpu.tessera.dev", "node-a", "node-a", 4}, limits);
    ASSERT_TRUE(slices.ok()) << minor << ": " << slices.status();
    std::size_t devices = 0, sets = 0;
    for (const auto& s : *slices) {
      devices += s.devices.size();
      sets += s.shared_counters.size();
      EXPECT_EQ(s.pool.resource_slice_count, static_cast<std::int64_t>(slices->size()));
      EXPECT_EQ(s.pool.generation, 4);
      if (limits.counters_in_own_slice) {
        EXPECT_TRUE(s.devices.empty() || s.shared_counters.empty());
      }
    }
    EXPECT_EQ(devices, d->devices.size());
    EXPECT_EQ(sets, 8u);
    if (minor >= 35) {
      const std::size_t per_gpu = features.consumable_capacity ? 26 + 25 : 26;
      EXPECT_EQ(d->devices.size(), 8 * per_gpu) << minor;
      // Groups (a profile, a share kind) are never split: every device slice holds whole groups,
      // so no group name appears in two slices, and the order within each group survives.
      std::map<std::string, std::size_t> slice_of_group;
      std::map<std::string, std::vector<std::string>> model_order, sliced_order;
      auto group = [](const std::string& name) {
        DeviceName n = DeviceName::Parse(name).value();
        return StrCat(n.mig ? n.mig->profile_token : "gpu", n.share ? "/share" : "");
      };
      for (const auto& dev : d->devices) model_order[group(dev->name)].push_back(dev->name);
      for (std::size_t k = 0; k < slices->size(); ++k) {
        for (const auto& dev : (*slices)[k].devices) {
          const std::string g = group(dev.name);
          auto [it, added] = slice_of_group.emplace(g, k);
          EXPECT_EQ(it->second, k) << dev.name << " is in two slices";
          sliced_order[g].push_back(dev.name);
        }
      }
      EXPECT_EQ(sliced_order, model_order) << minor;
      EXPECT_LE(slices->size(), slice_of_group.size() + 1) << minor;
    } else {
      // 10 binding counters per GPU (8 memory slices, compute, media) and 32 per slice: 3 GPUs.
      EXPECT_EQ(slices->size(), 3u);
    }
  }
}

TEST(SlicesTest, AnEmptyNodeIsOneEmptySlice) {
  absl::StatusOr<std::vector<api::ResourceSliceSpec>> slices =
      SplitIntoSlices(NodeDevices{}, {"gpu.tessera.dev", "n", "n", 0}, SliceLimits{});
  ASSERT_TRUE(slices.ok());
  ASSERT_EQ(slices->size(), 1u);
  EXPECT_EQ((*slices)[0].pool.resource_slice_count, 1);
}

class ValidatePoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Node node(Model("a100-40gb"), 2, PartitionMode::kMigDynamic);
    devices_ = BuildNode(node).value();
    slices_ =
        SplitIntoSlices(devices_, {"gpu.tessera.dev", "node-a", "node-a", 1}, limits_).value();
    ASSERT_EQ(slices_.size(), 2u);
    ASSERT_TRUE(ValidatePool(slices_, limits_).ok());
  }
  std::string Error() {
    absl::Status s = ValidatePool(slices_, limits_);
    return s.ok() ? "OK" : std::string(s.message());
  }
  api::Device& Dev(int i) { return slices_[0].devices[i]; }
  NodeDevices devices_;
  std::vector<api::ResourceSliceSpec> slices_;
  SliceLimits limits_;
};

TEST_F(ValidatePoolTest, DeviceLimitsPerSlice) {
  api::ResourceSliceSpec& s = slices_[0];
  while (s.devices.size() <= 64) {
    api::Device extra = s.devices.front();
    extra.name = StrCat("gpu-9-mig-1g5gb-p", s.devices.size());
    s.devices.push_back(extra);
  }
  EXPECT_NE(Error().find("devices; the limit is 64"), std::string::npos) << Error();
  for (auto& d : s.devices) d.consumes_counters.clear();
  EXPECT_EQ(Error(), "OK");  // 128 without counters
}

TEST_F(ValidatePoolTest, CrossSliceRules) {
  slices_[1].devices.push_back(Dev(0));
  EXPECT_NE(Error().find("only one of sharedCounters or devices"), std::string::npos) << Error();
  slices_[1].devices.clear();
  slices_.push_back(slices_[0]);
  for (auto& s : slices_) s.pool.resource_slice_count = 3;
  EXPECT_NE(Error().find("not unique in the pool"), std::string::npos) << Error();
  slices_.pop_back();
  for (auto& s : slices_) s.pool.resource_slice_count = 2;
  Dev(0).consumes_counters[0].counter_set = "gpu-7-counters";
  EXPECT_NE(Error().find("which no slice of the pool defines"), std::string::npos) << Error();
  Dev(0).consumes_counters[0].counter_set = "gpu-0-counters";
  Dev(0).consumes_counters[0].counters["bogus"] = {api::Quantity::FromInt64(1)};
  EXPECT_NE(Error().find("unknown counter bogus"), std::string::npos) << Error();
}

TEST_F(ValidatePoolTest, PerDeviceRules) {
  Dev(0).consumes_counters.push_back(Dev(0).consumes_counters[0]);
  Dev(0).consumes_counters.back().counter_set = "gpu-1-counters";
  Dev(0).consumes_counters.push_back(Dev(0).consumes_counters[0]);
  EXPECT_NE(Error().find("3 consumesCounters entries; the limit is 2"), std::string::npos)
      << Error();
  Dev(0).consumes_counters.resize(1);
  Dev(0).attributes["driverVersion"] = api::DeviceAttribute::Version("535.104.05");
  EXPECT_NE(Error().find("not a semantic version"), std::string::npos) << Error();
  Dev(0).attributes.erase("driverVersion");
  Dev(0).attributes["productName"] = api::DeviceAttribute::String(std::string(65, 'x'));
  EXPECT_NE(Error().find("longer than 64"), std::string::npos) << Error();
  Dev(0).attributes.erase("productName");
  Dev(0).capacity["memory"].request_policy =
      api::CapacityRequestPolicy{.default_value = api::Quantity::FromInt64(1)};
  EXPECT_NE(Error().find("without allowMultipleAllocations"), std::string::npos) << Error();
  Dev(0).capacity["memory"].request_policy.reset();
  Dev(0).name = "GPU_0";
  EXPECT_NE(Error().find("not a DNS label"), std::string::npos) << Error();
  Dev(0).name = "gpu-0-x";
  for (int i = 0; i < 32; ++i) Dev(0).attributes[StrCat("a", i)] = api::DeviceAttribute::Int(i);
  EXPECT_NE(Error().find("attributes and capacities; the limit is 32"), std::string::npos)
      << Error();
}

TEST_F(ValidatePoolTest, CounterSetRules) {
  api::CounterSet& set = slices_[1].shared_counters[0];
  for (int i = 0; set.counters.size() <= 32; ++i)
    set.counters[StrCat("extra-", i)] = {api::Quantity::FromInt64(1)};
  EXPECT_NE(Error().find("counters; the limit is 32"), std::string::npos) << Error();
  slices_ = SplitIntoSlices(devices_, {"gpu.tessera.dev", "node-a", "node-a", 1}, limits_).value();
  for (int i = 0; i < 8; ++i)
    slices_[1].shared_counters.push_back(
        {StrCat("set-", i), {{"c", {api::Quantity::FromInt64(1)}}}});
  EXPECT_NE(Error().find("10 counter sets; the limit is 8"), std::string::npos) << Error();
  slices_[1].shared_counters.resize(2);
  slices_[1].shared_counters[1].name = "gpu-0-counters";
  EXPECT_NE(Error().find("defined twice"), std::string::npos) << Error();
}

TEST_F(ValidatePoolTest, ShareRequestPolicies) {
  Node node(Model("a100-40gb"), 1, PartitionMode::kMps);
  NodeDevices d = BuildNode(node).value();
  slices_ = SplitIntoSlices(d, {"gpu.tessera.dev", "node-a", "node-a", 1}, limits_).value();
  ASSERT_EQ(Error(), "OK");
  auto& policy = *Dev(0).capacity["memory"].request_policy;
  policy.default_value = api::Quantity::Parse("200Mi").value();
  EXPECT_NE(Error().find("not a multiple of the step"), std::string::npos) << Error();
  policy.default_value = api::Quantity::Parse("100Gi").value();
  EXPECT_NE(Error().find("outside validRange"), std::string::npos) << Error();
}

}  // namespace
}  // namespace tessera::partitioner
