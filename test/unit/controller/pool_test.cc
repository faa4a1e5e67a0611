// Planning a node's ResourceSlice writes: names that say generation and position, a generation
// kept while only the contents of slices change (steering), a new generation when devices move
// between slices, and deletion of everything that is not a current member of the pool.

#include "tessera/controller/pool.h"

#include <map>
#include <regex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tessera/api/resource.h"
#include "tessera/api/strings.h"
#include "tessera/partitioner/catalogue.h"
#include "tessera/partitioner/device_model.h"
#include "tessera/partitioner/gpu_state.h"
#include "tessera/partitioner/placement.h"
#include "tessera/partitioner/slices.h"

namespace tessera::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

constexpr char kDriver[] = "gpu.tessera.dev";

PoolTarget Target(std::string node = "node-a") {
  return PoolTarget{.node = node, .node_uid = "node-uid-1", .driver = kDriver};
}

// A device slice of `target`'s pool holding `devices`, optionally consuming `counter_set`.
api::ResourceSliceSpec DeviceSlice(const std::vector<std::string>& devices,
                                   const std::string& counter_set = "") {
  api::ResourceSliceSpec spec;
  spec.driver = kDriver;
  spec.pool.name = "node-a";
  spec.node_name = "node-a";
  for (const std::string& name : devices) {
    api::Device d;
    d.name = name;
    d.attributes["type"] = api::DeviceAttribute::String("mig");
    if (!counter_set.empty()) {
      d.consumes_counters.push_back(
          {.counter_set = counter_set,
           .counters = {{"memory-slice-0", {api::Quantity::FromInt64(1)}}}});
    }
    spec.devices.push_back(std::move(d));
  }
  return spec;
}

api::ResourceSliceSpec CounterSlice(const std::vector<std::string>& sets) {
  api::ResourceSliceSpec spec;
  spec.driver = kDriver;
  spec.pool.name = "node-a";
  spec.node_name = "node-a";
  for (const std::string& name : sets) {
    spec.shared_counters.push_back(
        {.name = name, .counters = {{"memory-slice-0", {api::Quantity::FromInt64(1)}}}});
  }
  return spec;
}

std::vector<std::string> Names(const std::vector<api::Json>& objects) {
  std::vector<std::string> out;
  for (const api::Json& o : objects) out.push_back(o["metadata"]["name"].get<std::string>());
  return out;
}

std::vector<std::string> Names(const std::vector<StoredSlice>& slices) {
  std::vector<std::string> out;
  for (const StoredSlice& s : slices) out.push_back(s.name);
  return out;
}

// The API server as far as the planner can tell: applies create or replace objects by name
// (checking resourceVersion when the apply carries one), deletes remove them.
class FakeServer {
 public:
  void Execute(const PoolPlan& plan) {
    for (const api::Json& apply : plan.applies) {
      api::Json object = apply;
      const std::string name = object["metadata"]["name"].get<std::string>();
      auto it = objects_.find(name);
      if (object["metadata"].contains("resourceVersion")) {
        ASSERT_NE(it, objects_.end()) << name << ": resourceVersion on a new object";
        EXPECT_EQ(object["metadata"]["resourceVersion"].get<std::string>(),
                  it->second.resource_version)
            << name << ": stale resourceVersion";
      }
      object["metadata"]["uid"] = it == objects_.end() ? StrCat("uid-", ++uids_) : it->second.uid;
      object["metadata"]["resourceVersion"] = StrCat(++version_);
      // metadata.generation as the API server keeps it: 1 on create, +1 when the spec changes.
      StoredSlice stored = ToStoredSlice(object);
      stored.object_generation = it == objects_.end() ? 1
                                 : it->second.digest == stored.digest
                                     ? it->second.object_generation
                                     : it->second.object_generation + 1;
      // The controller's annotation names the generation its write gives the object.
      const api::Json published = api::Json::parse(
          object["metadata"]["annotations"][kPublishedAnnotation].get<std::string>());
      EXPECT_EQ(published["objectGeneration"], stored.object_generation) << name;
      EXPECT_EQ(published["digest"], stored.digest) << name;
      EXPECT_EQ(published["members"], stored.members) << name;
      objects_[name] = std::move(stored);
    }
    for (const StoredSlice& s : plan.deletes) objects_.erase(s.name);
  }

  void Put(StoredSlice s) { objects_[s.name] = std::move(s); }

  std::vector<StoredSlice> Stored() const {
    std::vector<StoredSlice> out;
    for (const auto& [name, s] : objects_) out.push_back(s);
    return out;
  }

 private:
  std::map<std::string, StoredSlice> objects_;
  int uids_ = 0;
  int version_ = 100;
};

// A stored slice named `name` whose spec says `generation` of `count` slices.
StoredSlice StoredAs(const std::string& name, api::ResourceSliceSpec spec, std::int64_t generation,
                     std::int64_t count) {
  spec.pool.generation = generation;
  spec.pool.resource_slice_count = count;
  StoredSlice s = ToStoredSlice({{"metadata", {{"name", name}}}, {"spec", spec}});
  s.uid = StrCat("uid-", name);
  s.resource_version = "7";
  s.object_generation = 3;
  return s;
}

// The two-slice pool most tests start from: devices, then the counter set.
std::vector<api::ResourceSliceSpec> TwoSlices() {
  return {DeviceSlice({"gpu-0-mig-1g5gb-p0", "gpu-0-mig-1g5gb-p1"}, "gpu-0-counters"),
          CounterSlice({"gpu-0-counters"})};
}

// `desired` written once to an empty server.
FakeServer Published(const std::vector<api::ResourceSliceSpec>& desired) {
  FakeServer server;
  server.Execute(PlanPool(Target(), desired, {}));
  return server;
}

// DNS-1123 subdomain, as the API server validates object names.
bool IsDnsSubdomain(const std::string& name) {
  static const std::regex kRe(R"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)");
  return name.size() <= 253 && std::regex_match(name, kRe);
}

// ---- Names ---------------------------------------------------------------------------------

TEST(SliceNameTest, NamesNodeDriverGenerationAndFiveDigitIndex) {
  EXPECT_EQ(SliceName(Target(), 1, 0), "node-a-gpu.tessera.dev-g1-00000");
  EXPECT_EQ(SliceName(Target(), 12, 345), "node-a-gpu.tessera.dev-g12-00345");
}

TEST(SliceNameTest, LongNodeNamesFitTheLimitAndStayDistinct) {
  // Node names may be 253 characters themselves.
  const std::string base(245, 'n');
  const std::string a = SliceName(Target(base + "-a"), 3, 7);
  const std::string b = SliceName(Target(base + "-b"), 3, 7);
  EXPECT_LE(a.size(), 253u);
  EXPECT_LE(b.size(), 253u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(IsDnsSubdomain(a)) << a;
  EXPECT_TRUE(a.ends_with("-gpu.tessera.dev-g3-00007")) << a;
  // Stable: the same node gets the same name every time.
  EXPECT_EQ(a, SliceName(Target(base + "-a"), 3, 7));
}

// Was a bug (pool.cc, fixed) NodePart): a long node name is cut at 163 characters and "-<hash>"
// appended; when the cut ends on a "." the name contains ".-", which is not a DNS subdomain, so the
// API server refuses every slice of the node. Input: a 203-character FQDN with a "." at offset 162.
// Expected: a valid name. Actual: "...<label>.-<hash>-gpu.tessera.dev-g1-00000".
TEST(SliceNameTest, LongNodeNameCutAtADotIsStillADnsSubdomain) {
  const std::string node = StrCat(std::string(60, 'a'), ".", std::string(60, 'b'), ".",
                                  std::string(40, 'c'), ".", std::string(40, 'd'));
  ASSERT_EQ(node[162], '.');
  ASSERT_TRUE(IsDnsSubdomain(node));
  const std::string name = SliceName(Target(node), 1, 0);
  EXPECT_LE(name.size(), 253u);
  EXPECT_TRUE(IsDnsSubdomain(name)) << name;
}

// ---- A cold pool ---------------------------------------------------------------------------

TEST(PlanPoolTest, ColdPoolWritesGenerationOneInSliceOrder) {
  const std::vector<api::ResourceSliceSpec> desired = TwoSlices();
  const PoolPlan plan = PlanPool(Target(), desired, {});
  EXPECT_EQ(plan.generation, 1);
  EXPECT_TRUE(plan.new_generation);
  EXPECT_EQ(plan.updated_in_place, 0);
  EXPECT_THAT(plan.deletes, IsEmpty());
  EXPECT_THAT(Names(plan.applies),
              ElementsAre("node-a-gpu.tessera.dev-g1-00000", "node-a-gpu.tessera.dev-g1-00001"));
  for (std::size_t i = 0; i < plan.applies.size(); ++i) {
    const api::Json& o = plan.applies[i];
    EXPECT_EQ(o["apiVersion"], "resource.k8s.io/v1");
    EXPECT_EQ(o["kind"], "ResourceSlice");
    EXPECT_FALSE(o["metadata"].contains("resourceVersion")) << "a create carries no version";
    const api::Json owners = o["metadata"]["ownerReferences"];
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_EQ(owners[0]["kind"], "Node");
    EXPECT_EQ(owners[0]["apiVersion"], "v1");
    EXPECT_EQ(owners[0]["name"], "node-a");
    EXPECT_EQ(owners[0]["uid"], "node-uid-1");
    EXPECT_EQ(owners[0]["controller"], true);

    api::ResourceSliceSpec spec;
    ASSERT_TRUE(api::Decode(api::DecodeContext(), o["spec"], &spec).ok());
    EXPECT_EQ(spec.pool.generation, 1);
    EXPECT_EQ(spec.pool.resource_slice_count, 2);
    api::ResourceSliceSpec expected = desired[i];
    expected.pool.generation = 1;
    expected.pool.resource_slice_count = 2;
    EXPECT_EQ(spec, expected) << "slice " << i << " carries the desired spec";
  }
}

TEST(PlanPoolTest, ReplanningWhatWasWrittenDoesNothing) {
  FakeServer server = Published(TwoSlices());
  const std::vector<StoredSlice> stored = server.Stored();
  ASSERT_EQ(stored.size(), 2u);
  for (const StoredSlice& s : stored) EXPECT_TRUE(s.decoded) << s.name;

  const PoolPlan plan = PlanPool(Target(), TwoSlices(), stored);
  EXPECT_EQ(plan.generation, 1);
  EXPECT_FALSE(plan.new_generation);
  EXPECT_THAT(plan.applies, IsEmpty());
  EXPECT_THAT(plan.deletes, IsEmpty());
  EXPECT_EQ(plan.updated_in_place, 0);
}

// ---- Keeping the generation ----------------------------------------------------------------

TEST(PlanPoolTest, ReorderedDevicesAreUpdatedInPlaceUnderTheSameGeneration) {
  FakeServer server = Published(TwoSlices());
  const std::vector<StoredSlice> stored = server.Stored();
  std::vector<api::ResourceSliceSpec> desired = TwoSlices();
  std::swap(desired[0].devices[0], desired[0].devices[1]);

  const PoolPlan plan = PlanPool(Target(), desired, stored);
  EXPECT_EQ(plan.generation, 1);
  EXPECT_FALSE(plan.new_generation);
  EXPECT_EQ(plan.updated_in_place, 1);
  EXPECT_THAT(plan.deletes, IsEmpty());
  ASSERT_EQ(plan.applies.size(), 1u);
  const api::Json& apply = plan.applies[0];
  EXPECT_EQ(apply["metadata"]["name"], "node-a-gpu.tessera.dev-g1-00000");
  std::string stored_version;
  for (const StoredSlice& s : stored) {
    if (s.name == "node-a-gpu.tessera.dev-g1-00000") stored_version = s.resource_version;
  }
  ASSERT_FALSE(stored_version.empty());
  EXPECT_EQ(apply["metadata"].value("resourceVersion", ""), stored_version);
  EXPECT_EQ(apply["spec"]["devices"][0]["name"], "gpu-0-mig-1g5gb-p1");

  server.Execute(plan);
  const PoolPlan again = PlanPool(Target(), desired, server.Stored());
  EXPECT_THAT(again.applies, IsEmpty());
  EXPECT_THAT(again.deletes, IsEmpty());
}

TEST(PlanPoolTest, ChangedAttributesAreUpdatedInPlace) {
  FakeServer server = Published(TwoSlices());
  std::vector<api::ResourceSliceSpec> desired = TwoSlices();
  desired[0].devices[1].attributes["uuid"] = api::DeviceAttribute::String("MIG-1234");

  const PoolPlan plan = PlanPool(Target(), desired, server.Stored());
  EXPECT_FALSE(plan.new_generation);
  EXPECT_EQ(plan.generation, 1);
  EXPECT_EQ(plan.updated_in_place, 1);
  EXPECT_THAT(Names(plan.applies), ElementsAre("node-a-gpu.tessera.dev-g1-00000"));
  EXPECT_THAT(plan.deletes, IsEmpty());
}

// ---- A new generation ----------------------------------------------------------------------

TEST(PlanPoolTest, MovingADeviceBetweenSlicesWritesANewGenerationThenDeletesTheOld) {
  const std::vector<api::ResourceSliceSpec> before = {DeviceSlice({"gpu-0", "gpu-1"}),
                                                      DeviceSlice({"gpu-2"})};
  FakeServer server = Published(before);
  const std::vector<StoredSlice> stored = server.Stored();
  const std::vector<api::ResourceSliceSpec> after = {DeviceSlice({"gpu-0"}),
                                                     DeviceSlice({"gpu-1", "gpu-2"})};

  const PoolPlan plan = PlanPool(Target(), after, stored);
  EXPECT_TRUE(plan.new_generation);
  EXPECT_EQ(plan.generation, 2);
  EXPECT_EQ(plan.updated_in_place, 0);
  EXPECT_THAT(Names(plan.applies),
              ElementsAre("node-a-gpu.tessera.dev-g2-00000", "node-a-gpu.tessera.dev-g2-00001"));
  for (const api::Json& o : plan.applies) {
    EXPECT_FALSE(o["metadata"].contains("resourceVersion"));
    EXPECT_EQ(o["spec"]["pool"]["generation"], 2);
    EXPECT_EQ(o["spec"]["pool"]["resourceSliceCount"], 2);
  }
  EXPECT_THAT(Names(plan.deletes), UnorderedElementsAreArray(Names(stored)));

  server.Execute(plan);
  const PoolPlan again = PlanPool(Target(), after, server.Stored());
  EXPECT_EQ(again.generation, 2);
  EXPECT_THAT(again.applies, IsEmpty());
  EXPECT_THAT(again.deletes, IsEmpty());
}

TEST(PlanPoolTest, AChangedSliceCountWritesANewGeneration) {
  FakeServer server = Published(TwoSlices());
  const std::vector<StoredSlice> stored = server.Stored();
  std::vector<api::ResourceSliceSpec> desired = TwoSlices();
  desired.push_back(DeviceSlice({"gpu-1"}));

  const PoolPlan plan = PlanPool(Target(), desired, stored);
  EXPECT_TRUE(plan.new_generation);
  EXPECT_EQ(plan.generation, 2);
  EXPECT_THAT(Names(plan.applies),
              ElementsAre("node-a-gpu.tessera.dev-g2-00000", "node-a-gpu.tessera.dev-g2-00001",
                          "node-a-gpu.tessera.dev-g2-00002"));
  for (const api::Json& o : plan.applies) EXPECT_EQ(o["spec"]["pool"]["resourceSliceCount"], 3);
  EXPECT_THAT(Names(plan.deletes), UnorderedElementsAreArray(Names(stored)));

  // And back down to one slice: generation 3, the three slices of generation 2 deleted.
  server.Execute(plan);
  const std::vector<api::ResourceSliceSpec> one = {DeviceSlice({"gpu-0"})};
  const PoolPlan shrink = PlanPool(Target(), one, server.Stored());
  EXPECT_EQ(shrink.generation, 3);
  EXPECT_THAT(Names(shrink.applies), ElementsAre("node-a-gpu.tessera.dev-g3-00000"));
  EXPECT_EQ(shrink.deletes.size(), 3u);
}

TEST(PlanPoolTest, RenamedCounterSetWritesANewGeneration) {
  FakeServer server = Published(TwoSlices());
  std::vector<api::ResourceSliceSpec> desired = {
      DeviceSlice({"gpu-0-mig-1g5gb-p0", "gpu-0-mig-1g5gb-p1"}, "gpu-7-counters"),
      CounterSlice({"gpu-7-counters"})};
  const PoolPlan plan = PlanPool(Target(), desired, server.Stored());
  EXPECT_TRUE(plan.new_generation);
  EXPECT_EQ(plan.generation, 2);
  EXPECT_EQ(plan.deletes.size(), 2u);
}

// ---- Slices that are not current members ---------------------------------------------------

TEST(PlanPoolTest, OlderGenerationsAndForeignNamesAreDeleted) {
  FakeServer server = Published(TwoSlices());
  const std::vector<api::ResourceSliceSpec> desired = TwoSlices();
  // Leftovers of an interrupted switch to generation 1, and names that are not ours.
  server.Put(StoredAs("node-a-gpu.tessera.dev-g0-00000", desired[0], 0, 2));
  server.Put(StoredAs("random-name", desired[0], 1, 2));
  server.Put(StoredAs("node-a-gpu.tessera.dev-g1-0", desired[0], 1, 2));        // index width
  server.Put(StoredAs("node-a-gpu.tessera.dev-g1-000002", desired[0], 1, 2));   // index width
  server.Put(StoredAs("node-b-gpu.tessera.dev-g1-00000", desired[0], 1, 2));    // another node
  server.Put(StoredAs("node-a-other.example.com-g1-00000", desired[0], 1, 2));  // another driver
  server.Put(StoredAs("node-a-gpu.tessera.dev-gx-00000", desired[0], 1, 2));    // no number
  // Named for generation 5, but the spec says 3: not what its name says, and it must not make
  // generation 5 current.
  server.Put(StoredAs("node-a-gpu.tessera.dev-g5-00000", desired[0], 3, 2));

  const PoolPlan plan = PlanPool(Target(), desired, server.Stored());
  EXPECT_FALSE(plan.new_generation);
  EXPECT_EQ(plan.generation, 1);
  EXPECT_THAT(plan.applies, IsEmpty());
  EXPECT_THAT(Names(plan.deletes),
              UnorderedElementsAreArray(std::vector<std::string>{
                  "node-a-gpu.tessera.dev-g0-00000", "random-name", "node-a-gpu.tessera.dev-g1-0",
                  "node-a-gpu.tessera.dev-g1-000002", "node-b-gpu.tessera.dev-g1-00000",
                  "node-a-other.example.com-g1-00000", "node-a-gpu.tessera.dev-gx-00000",
                  "node-a-gpu.tessera.dev-g5-00000"}));
}

TEST(PlanPoolTest, SpecGenerationDisagreeingWithTheNameIsReplaced) {
  const std::vector<api::ResourceSliceSpec> desired = TwoSlices();
  // Generation 2 by name, but slice 1 says generation 1 in its spec.
  const std::vector<StoredSlice> stored = {
      StoredAs("node-a-gpu.tessera.dev-g2-00000", desired[0], 2, 2),
      StoredAs("node-a-gpu.tessera.dev-g2-00001", desired[1], 1, 2)};
  const PoolPlan plan = PlanPool(Target(), desired, stored);
  EXPECT_TRUE(plan.new_generation);
  EXPECT_EQ(plan.generation, 3);
  EXPECT_EQ(plan.applies.size(), 2u);
  EXPECT_THAT(Names(plan.deletes), UnorderedElementsAreArray(Names(stored)));
}

// Was a bug (pool.cc, fixed) ParseName): the generation is read with from_chars, which accepts
// leading zeros, so "…-g01-00000" counts as slice 0 of generation 1 although SliceName never writes
// it. With a canonical slice 0 of generation 1 also stored, one of the two becomes the pool member
// and which depends on the order of `stored`. Input: stored = {g1-00000, g01-00000}, same spec,
// desired = that one slice. Expected: nothing applied, "g01-00000" deleted. Actual: the canonical
// "g1-00000" is deleted and the foreign "g01-00000" kept as the pool's slice.
TEST(PlanPoolTest, NonCanonicalGenerationSpellingIsNotOurs) {
  const std::vector<api::ResourceSliceSpec> desired = {DeviceSlice({"gpu-0"})};
  const std::vector<StoredSlice> stored = {
      StoredAs("node-a-gpu.tessera.dev-g1-00000", desired[0], 1, 1),
      StoredAs("node-a-gpu.tessera.dev-g01-00000", desired[0], 1, 1)};
  const PoolPlan plan = PlanPool(Target(), desired, stored);
  EXPECT_EQ(plan.generation, 1);
  EXPECT_THAT(plan.applies, IsEmpty());
  EXPECT_THAT(Names(plan.deletes), ElementsAre("node-a-gpu.tessera.dev-g01-00000"));
}

TEST(PlanPoolTest, AnUndecodableSliceForcesANewGeneration) {
  FakeServer server = Published(TwoSlices());
  const api::Json broken = {
      {"apiVersion", "resource.k8s.io/v1"},
      {"kind", "ResourceSlice"},
      {"metadata",
       {{"name", "node-a-gpu.tessera.dev-g1-00001"}, {"uid", "u-9"}, {"resourceVersion", "55"}}},
      {"spec", {{"driver", kDriver}, {"pool", {{"name", "node-a"}}}, {"devices", "not-a-list"}}}};
  const StoredSlice undecodable = ToStoredSlice(broken);
  EXPECT_FALSE(undecodable.decoded);
  EXPECT_EQ(undecodable.name, "node-a-gpu.tessera.dev-g1-00001");
  EXPECT_EQ(undecodable.uid, "u-9");
  EXPECT_EQ(undecodable.resource_version, "55");
  server.Put(undecodable);

  const PoolPlan plan = PlanPool(Target(), TwoSlices(), server.Stored());
  EXPECT_TRUE(plan.new_generation);
  EXPECT_EQ(plan.generation, 2);
  EXPECT_THAT(Names(plan.applies),
              ElementsAre("node-a-gpu.tessera.dev-g2-00000", "node-a-gpu.tessera.dev-g2-00001"));
  EXPECT_THAT(Names(plan.deletes),
              UnorderedElementsAreArray(std::vector<std::string>{
                  "node-a-gpu.tessera.dev-g1-00000", "node-a-gpu.tessera.dev-g1-00001"}));
}

TEST(ToStoredSliceTest, ReadsNameUidVersionAndSpec) {
  api::ResourceSliceSpec spec = DeviceSlice({"gpu-0"});
  spec.pool.generation = 4;
  spec.pool.resource_slice_count = 1;
  const api::Json object = {{"metadata", {{"name", "s"}, {"uid", "u"}, {"resourceVersion", "9"}}},
                            {"spec", spec}};
  const StoredSlice s = ToStoredSlice(object);
  EXPECT_TRUE(s.decoded);
  EXPECT_EQ(s.name, "s");
  EXPECT_EQ(s.uid, "u");
  EXPECT_EQ(s.resource_version, "9");
  EXPECT_EQ(s.pool.generation, 4);
  EXPECT_EQ(s.members, MembersDigest(spec));
  EXPECT_NE(s.members, MembersDigest(DeviceSlice({"gpu-1"})));
  EXPECT_EQ(s.digest, SpecDigest(spec));
  EXPECT_FALSE(ToStoredSlice({{"metadata", {{"name", "no-spec"}}}}).decoded);
  // The compact form the informer caches reads back the same.
  const StoredSlice c = ToStoredSlice(CompactSlice(object));
  EXPECT_EQ(c.name, "s");
  EXPECT_EQ(c.resource_version, "9");
  EXPECT_EQ(c.digest, s.digest);
  EXPECT_EQ(c.members, s.members);
  EXPECT_EQ(c.pool, s.pool);
  EXPECT_TRUE(c.decoded);
  EXPECT_LT(CompactSlice(object).dump().size(), object.dump().size() + 200);
}

// ---- Fields a feature gate drops -----------------------------------------------------------

TEST(DroppedFieldsTest, NamesEveryFieldTheServerDropped) {
  api::ResourceSliceSpec sent = DeviceSlice({"gpu-0-mig-1g5gb-p0", "gpu-0-mps"}, "gpu-0-counters");
  sent.devices[1].allow_multiple_allocations = true;
  sent.shared_counters = CounterSlice({"gpu-0-counters"}).shared_counters;

  EXPECT_THAT(DroppedFields(api::Json(sent), api::Json(sent)), IsEmpty());

  api::ResourceSliceSpec stripped = sent;
  stripped.shared_counters.clear();
  for (api::Device& d : stripped.devices) {
    d.consumes_counters.clear();
    d.allow_multiple_allocations.reset();
  }
  EXPECT_THAT(DroppedFields(api::Json(sent), api::Json(stripped)),
              ElementsAre("sharedCounters", "consumesCounters", "allowMultipleAllocations"));

  api::ResourceSliceSpec only_multiple_dropped = sent;
  only_multiple_dropped.devices[1].allow_multiple_allocations.reset();
  EXPECT_THAT(DroppedFields(api::Json(sent), api::Json(only_multiple_dropped)),
              ElementsAre("allowMultipleAllocations"));

  // Nothing sent, nothing dropped.
  const api::ResourceSliceSpec plain = DeviceSlice({"gpu-0"});
  EXPECT_THAT(DroppedFields(api::Json(plain), api::Json(plain)), IsEmpty());
}

// ---- Steering with the real device model ---------------------------------------------------

// A node of 8 GPUs of one model in mig-dynamic, as the controller models it.
class EightH100s {
 public:
  EightH100s() : model_(*partitioner::FindBuiltinModel("h100-80gb")) {
    policy_.mode = api::PartitionMode::kMigDynamic;
    for (int i = 0; i < 8; ++i) {
      api::GpuInfo info;
      info.index = i;
      info.uuid = StrCat("GPU-", i, "0000000-1111-2222-3333-444444444444");
      info.product = model_.product_name;
      info.model = model_.key;
      info.memory = api::Quantity::FromInt64(model_.memory_mib * 1024 * 1024,
                                             api::Quantity::Format::kBinarySI);
      info.compute_capability = model_.compute_capability;
      info.pci_bus_id = StrCat("0000:", 10 + i, ":00.0");
      info.mig_capable = true;
      info.mig_enabled = true;
      infos_.push_back(info);
      states_.emplace_back(model_);
    }
  }

  partitioner::GpuState& state(int gpu) { return states_[gpu]; }
  const partitioner::GpuModel& model() const { return model_; }

  std::vector<api::ResourceSliceSpec> Slices(partitioner::DeviceModeler& modeler) {
    std::vector<partitioner::GpuInput> inputs;
    for (const api::GpuInfo& info : infos_) inputs.push_back({&info, &policy_});
    absl::StatusOr<partitioner::NodeDevices> devices =
        modeler.Build({.states = states_,
                       .gpus = inputs,
                       .driver_version = "550.54.15",
                       .cuda_driver_version = "12.4"});
    EXPECT_TRUE(devices.ok()) << devices.status();
    if (!devices.ok()) return {};
    absl::StatusOr<std::vector<api::ResourceSliceSpec>> slices = partitioner::SplitIntoSlices(
        *devices, {.driver = kDriver, .pool = "node-a", .node_name = "node-a", .generation = 0},
        partitioner::SliceLimits::ForFeatures(modeler.features()));
    EXPECT_TRUE(slices.ok()) << slices.status();
    return slices.ok() ? *slices : std::vector<api::ResourceSliceSpec>{};
  }

 private:
  const partitioner::GpuModel& model_;
  api::GpuPolicy policy_;
  std::vector<api::GpuInfo> infos_;
  std::vector<partitioner::GpuState> states_;
};

std::vector<std::string> DeviceOrder(const std::vector<api::ResourceSliceSpec>& slices) {
  std::vector<std::string> out;
  for (const api::ResourceSliceSpec& s : slices) {
    for (const api::Device& d : s.devices) out.push_back(d.name);
  }
  return out;
}

TEST(PlanPoolTest, SteeringAfterAnAllocationKeepsTheGeneration) {
  EightH100s node;
  partitioner::Placer placer(partitioner::Policy::kTessera);
  partitioner::DeviceModeler modeler(placer, partitioner::ApiFeatures{});
  const std::vector<api::ResourceSliceSpec> cold = node.Slices(modeler);
  ASSERT_GT(cold.size(), 1u);

  FakeServer server;
  const PoolPlan first = PlanPool(Target(), cold, {});
  EXPECT_EQ(first.generation, 1);
  EXPECT_EQ(first.applies.size(), cold.size());
  server.Execute(first);

  // A 3g instance allocated on GPU 3: the Placer now ranks GPU 3's free half first.
  ASSERT_TRUE(node.state(3).AddInstance(node.model().ProfileIndex("3g"), {4, 4}, "ns/claim").ok());
  const std::vector<api::ResourceSliceSpec> steered = node.Slices(modeler);
  ASSERT_EQ(steered.size(), cold.size());
  ASSERT_NE(DeviceOrder(steered), DeviceOrder(cold)) << "the allocation must change the ranking";

  const PoolPlan plan = PlanPool(Target(), steered, server.Stored());
  EXPECT_FALSE(plan.new_generation);
  EXPECT_EQ(plan.generation, 1);
  EXPECT_THAT(plan.deletes, IsEmpty());
  EXPECT_GE(plan.updated_in_place, 1);
  EXPECT_EQ(plan.updated_in_place, static_cast<int>(plan.applies.size()));
  for (const api::Json& o : plan.applies) {
    EXPECT_TRUE(o["metadata"].contains("resourceVersion")) << o["metadata"]["name"];
    EXPECT_EQ(o["spec"]["pool"]["generation"], 1);
  }
  server.Execute(plan);
  const PoolPlan settled = PlanPool(Target(), steered, server.Stored());
  EXPECT_THAT(settled.applies, IsEmpty());
  EXPECT_THAT(settled.deletes, IsEmpty());
}

}  // namespace
}  // namespace tessera::controller

namespace tessera::controller {
namespace {

// What the controller records for its own write must read back exactly as the server's copy of
// the same slice does, or every sync would rewrite it.
TEST(CompactWrittenTest, AgreesWithTheDecodedServerCopy) {
  const PoolTarget target{.node = "node-a", .node_uid = "u", .driver = "gpu.tessera.dev"};
  api::ResourceSliceSpec spec;
  spec.driver = "gpu.tessera.dev";
  spec.node_name = "node-a";
  spec.pool.name = "node-a";
  api::Device d0;
  d0.name = "gpu-0";
  d0.capacity["memory"] = {api::Quantity::Parse("40Gi").value(), std::nullopt};
  api::Device d1;
  d1.name = "gpu-1";
  spec.devices = {d0, d1};
  const std::vector<api::ResourceSliceSpec> desired = {spec};
  PoolPlan plan = PlanPool(target, desired, {});
  ASSERT_EQ(plan.applies.size(), 1u);
  ASSERT_EQ(plan.digests.size(), 1u);
  api::ResourceSliceSpec written = spec;  // a fresh pool: generation 1, one slice
  written.pool.generation = 1;
  written.pool.resource_slice_count = 1;
  EXPECT_EQ(plan.digests[0], SpecDigest(written));
  api::Json server = plan.applies[0];
  server["metadata"]["uid"] = "uid-1";
  server["metadata"]["resourceVersion"] = "42";
  server["metadata"]["generation"] = 1;
  // The answer as the controller reads it: without the spec.
  api::Json answer = server;
  answer.erase("spec");
  const StoredSlice a = ToStoredSlice(CompactWritten(plan.applies[0], answer));
  const StoredSlice b = ToStoredSlice(server);
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.members, b.members);
  EXPECT_EQ(a.object_generation, 1);
  EXPECT_EQ(a.pool, b.pool);
  EXPECT_EQ(a.uid, "uid-1");
  EXPECT_EQ(a.resource_version, "42");
  std::vector<StoredSlice> stored = {a};
  EXPECT_TRUE(PlanPool(target, desired, stored).applies.empty());
}

// ---- Slices known by their metadata alone ------------------------------------------------

// A fresh one-slice pool of two devices, planned for node-a, and the server's copy of it.
struct Written {
  PoolTarget target{.node = "node-a", .node_uid = "u", .driver = "gpu.tessera.dev"};
  std::vector<api::ResourceSliceSpec> desired;
  PoolPlan plan;
  api::Json server;  // as the API server stores the apply: uid, version, generation 1

  Written() {
    api::ResourceSliceSpec spec = DeviceSlice({"gpu-0", "gpu-1"});
    spec.node_name = "node-a";
    desired = {spec};
    plan = PlanPool(target, desired, {});
    server = plan.applies.at(0);
    server["metadata"]["uid"] = "uid-1";
    server["metadata"]["resourceVersion"] = "42";
    server["metadata"]["generation"] = 1;
  }

  // What a metadata-only watch event carries.
  api::Json Metadata() const {
    return {{"apiVersion", "meta.k8s.io/v1"},
            {"kind", "PartialObjectMetadata"},
            {"metadata", server["metadata"]}};
  }
};

TEST(PlanBodyTest, IsTheApplySerialisedWithTheDigestedSpec) {
  const Written w;
  ASSERT_EQ(w.plan.bodies.size(), 1u);
  const api::Json body = api::Json::parse(w.plan.bodies[0]);
  EXPECT_EQ(body, w.plan.applies[0]);
  EXPECT_EQ(w.plan.digests[0], DigestOfText(body["spec"].dump()));
}

TEST(CompactFromAnnotationTest, MetadataOfOurWriteReadsAsTheWholeObject) {
  const Written w;
  const std::optional<api::Json> compact = CompactFromAnnotation(w.Metadata(), "gpu.tessera.dev");
  ASSERT_TRUE(compact.has_value());
  const StoredSlice a = ToStoredSlice(*compact);
  const StoredSlice b = ToStoredSlice(w.server);
  EXPECT_TRUE(a.decoded);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.uid, "uid-1");
  EXPECT_EQ(a.resource_version, "42");
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.members, b.members);
  EXPECT_EQ(a.pool, b.pool);
  EXPECT_EQ((*compact)["spec"]["driver"], "gpu.tessera.dev");
  EXPECT_EQ((*compact)["spec"]["nodeName"], "node-a");
  // Nothing to write: the planner trusts it as much as the decoded copy.
  EXPECT_TRUE(PlanPool(w.target, w.desired, std::vector<StoredSlice>{a}).applies.empty());
}

TEST(CompactFromAnnotationTest, DistrustsAStaleOrMissingAnnotation) {
  Written w;
  // Someone edited the spec: the server bumped metadata.generation, the annotation still says 1.
  w.server["metadata"]["generation"] = 2;
  EXPECT_FALSE(CompactFromAnnotation(w.Metadata(), "gpu.tessera.dev").has_value());
  w.server["metadata"]["generation"] = 1;
  for (const char* bad : {"", "not json", "[1]", R"({"objectGeneration":1})"}) {
    w.server["metadata"]["annotations"][kPublishedAnnotation] = bad;
    EXPECT_FALSE(CompactFromAnnotation(w.Metadata(), "gpu.tessera.dev").has_value()) << bad;
  }
  w.server["metadata"].erase("annotations");
  EXPECT_FALSE(CompactFromAnnotation(w.Metadata(), "gpu.tessera.dev").has_value());
  // Unreadable as well: undecoded, in the pool of the Node that owns it, so it is replaced.
  const api::Json unreadable = UnreadableCompact(w.Metadata(), "gpu.tessera.dev");
  const StoredSlice s = ToStoredSlice(unreadable);
  EXPECT_FALSE(s.decoded);
  EXPECT_EQ(unreadable["spec"]["pool"]["name"], "node-a");
  const PoolPlan plan = PlanPool(w.target, w.desired, std::vector<StoredSlice>{s});
  EXPECT_EQ(plan.generation, 2);
  EXPECT_THAT(Names(plan.deletes), ElementsAre(s.name));
}

TEST(CompactFromAnnotationTest, AnUpdateNamesTheNextGeneration) {
  const Written w;
  StoredSlice stored = ToStoredSlice(*CompactFromAnnotation(w.Metadata(), "gpu.tessera.dev"));
  std::vector<api::ResourceSliceSpec> changed = w.desired;
  changed[0].devices[1].attributes["uuid"] = api::DeviceAttribute::String("MIG-1234");
  PoolPlan plan = PlanPool(w.target, changed, std::vector<StoredSlice>{stored});
  ASSERT_EQ(plan.applies.size(), 1u);
  EXPECT_FALSE(plan.new_generation);
  auto published = [](const api::Json& apply) {
    return api::Json::parse(
        apply["metadata"]["annotations"][kPublishedAnnotation].get<std::string>());
  };
  EXPECT_EQ(published(plan.applies[0])["objectGeneration"], 2);
  EXPECT_EQ(published(plan.applies[0])["digest"], plan.digests[0]);
  // An unknown stored generation is never vouched for.
  stored.object_generation = 0;
  plan = PlanPool(w.target, changed, std::vector<StoredSlice>{stored});
  ASSERT_EQ(plan.applies.size(), 1u);
  EXPECT_EQ(published(plan.applies[0])["objectGeneration"], 0);
}

TEST(GatedFieldsTest, NamesTheGatedFieldsASpecUses) {
  api::ResourceSliceSpec plain = DeviceSlice({"gpu-0"});
  EXPECT_THAT(GatedFields(api::Json(plain)), ElementsAre());
  api::ResourceSliceSpec all = DeviceSlice({"gpu-0", "gpu-1"}, "gpu-0-counters");
  all.devices[1].allow_multiple_allocations = true;
  EXPECT_THAT(GatedFields(api::Json(CounterSlice({"gpu-0-counters"}))),
              ElementsAre("sharedCounters"));
  EXPECT_THAT(GatedFields(api::Json(all)),
              ElementsAre("consumesCounters", "allowMultipleAllocations"));
  EXPECT_THAT(GatedFields(api::Json("not a spec")), ElementsAre());
}

}  // namespace
}  // namespace tessera::controller
