// The nvml backend against a stub libnvidia-ml.so.1 (nvml_stub.cc) in a fake driver root: one
// H100 80GB in MIG mode and one A100 40GB with MIG off. The backend loads the stub exactly as it
// loads the driver's library; the test reaches the stub's controls through its own dlopen handle
// on the same file, which keeps the stub's state alive for the whole test.

#include "tessera/plugin/nvml_backend.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tessera/partitioner/catalogue.h"

namespace tessera::plugin {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kStubRoot[] = TESSERA_NVML_STUB_ROOT;
constexpr char kOldStubRoot[] = TESSERA_NVML_STUB_OLD_ROOT;
constexpr char kBrokenStubRoot[] = TESSERA_NVML_STUB_BROKEN_ROOT;
constexpr char kStubLibDir[] = TESSERA_NVML_STUB_ROOT "/usr/lib/x86_64-linux-gnu";
constexpr char kH100Uuid[] = "GPU-5e7a1c00-0000-4000-8000-000000000000";
constexpr unsigned int kNoInstance = 0xFFFFFFFFu;
constexpr unsigned long long kXidEvent = 0x8;
constexpr unsigned long long kDoubleBitEccEvent = 0x2;

// NVML GPU-instance profile IDs on the H100 (reference §1.3).
constexpr int k1g10gb = 19;
constexpr int k2g20gb = 14;
constexpr int k3g40gb = 9;

// The stub's test controls (see the end of nvml_stub.cc).
struct StubControls {
  void (*reset)() = nullptr;
  void (*fail_next)(const char*, int) = nullptr;
  int (*queue_event)(int, unsigned long long, unsigned long long, unsigned int,
                     unsigned int) = nullptr;
  int (*queue_xid)(int, unsigned long long) = nullptr;
  void (*set_gpu_lost)(int) = nullptr;
  void (*set_in_use)(int, unsigned int, int) = nullptr;
  void (*set_max_profile_info_version)(int) = nullptr;
  void (*set_ci_info_device_is_mig)(int) = nullptr;
  int (*init_count)() = nullptr;
  int (*event_set_count)() = nullptr;
  unsigned long long (*registered_events)(int) = nullptr;
  unsigned int (*max_wait_timeout_ms)() = nullptr;
};

template <typename Fn>
bool Bind(void* handle, Fn* out, const char* name) {
  *out = reinterpret_cast<Fn>(dlsym(handle, name));
  return *out != nullptr;
}

bool BindControls(void* h, StubControls* c) {
  return Bind(h, &c->reset, "nvmlStubReset") && Bind(h, &c->fail_next, "nvmlStubFailNext") &&
         Bind(h, &c->queue_event, "nvmlStubQueueEvent") &&
         Bind(h, &c->queue_xid, "nvmlStubQueueXid") &&
         Bind(h, &c->set_gpu_lost, "nvmlStubSetGpuLost") &&
         Bind(h, &c->set_in_use, "nvmlStubSetInUse") &&
         Bind(h, &c->set_max_profile_info_version, "nvmlStubSetMaxProfileInfoVersion") &&
         Bind(h, &c->set_ci_info_device_is_mig, "nvmlStubSetCiInfoDeviceIsMig") &&
         Bind(h, &c->init_count, "nvmlStubInitCount") &&
         Bind(h, &c->event_set_count, "nvmlStubEventSetCount") &&
         Bind(h, &c->registered_events, "nvmlStubRegisteredEvents") &&
         Bind(h, &c->max_wait_timeout_ms, "nvmlStubMaxWaitTimeoutMs");
}

std::vector<api::MigProfileInfo> SortedById(std::vector<api::MigProfileInfo> profiles) {
  std::sort(profiles.begin(), profiles.end(),
            [](const auto& a, const auto& b) { return a.profile_id < b.profile_id; });
  return profiles;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class NvmlBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string stub = StrCatPath(kStubLibDir, "libnvidia-ml.so.1");
    stub_handle_ = dlopen(stub.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(stub_handle_, nullptr) << dlerror();
    ASSERT_TRUE(BindControls(stub_handle_, &stub_)) << "the stub lacks a control";
    stub_.reset();
    dir_ = fs::path(::testing::TempDir()) /
           ("nvml-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (stub_handle_ != nullptr) dlclose(stub_handle_);
    fs::remove_all(dir_);
  }

  static std::string StrCatPath(const std::string& dir, const std::string& name) {
    return dir + "/" + name;
  }

  NvmlOptions Options(bool watch_events = false) {
    NvmlOptions o;
    o.driver_root = kStubRoot;
    o.watch_events = watch_events;
    o.log = [this](std::string_view message) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.emplace_back(message);
    };
    return o;
  }

  std::unique_ptr<NvmlBackend> Open(NvmlOptions options) {
    absl::StatusOr<std::unique_ptr<NvmlBackend>> b = NvmlBackend::Open(std::move(options));
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? std::move(*b) : nullptr;
  }
  std::unique_ptr<NvmlBackend> Open() { return Open(Options()); }

  static api::GpuInfo Gpu(NvmlBackend& b, int gpu) {
    absl::StatusOr<NodeInventory> inv = b.Discover();
    EXPECT_TRUE(inv.ok()) << inv.status();
    if (!inv.ok() || gpu >= static_cast<int>(inv->gpus.size())) return {};
    return inv->gpus[gpu];
  }

  // Polls Discover until `done` holds for GPU `gpu`, for at most 5 s.
  static bool WaitForGpu(NvmlBackend& b, int gpu,
                         const std::function<bool(const api::GpuInfo&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (done(Gpu(b, gpu))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  std::string Logged() {
    std::lock_guard<std::mutex> lock(log_mu_);
    std::string out;
    for (const std::string& line : log_) out += line + "\n";
    return out;
  }

  // An executable shell script in the test's directory.
  std::string Script(const std::string& name, const std::string& body) {
    const fs::path path = dir_ / name;
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(path, fs::perms::owner_all);
    return path.string();
  }

  void* stub_handle_ = nullptr;
  StubControls stub_;
  fs::path dir_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

TEST_F(NvmlBackendTest, MissingLibraryNamesRootPathsAndDlerror) {
  NvmlOptions o = Options();
  o.driver_root = dir_.string();
  absl::StatusOr<std::unique_ptr<NvmlBackend>> b = NvmlBackend::Open(o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(b.status().message());
  EXPECT_THAT(message, HasSubstr("driver root \"" + dir_.string() + "\""));
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu/", "/usr/lib64/", "/usr/lib/", "/lib64/",
                          "/lib/x86_64-linux-gnu/", "/usr/lib/aarch64-linux-gnu/"}) {
    EXPECT_THAT(message, HasSubstr(dir_.string() + dir + "libnvidia-ml.so.1"));
  }
  EXPECT_THAT(message, HasSubstr("cannot open shared object file"));
}

TEST_F(NvmlBackendTest, ExplicitLibraryPathOverridesTheSearch) {
  NvmlOptions o = Options();
  o.driver_root = dir_.string();  // nothing there
  o.library_path = StrCatPath(kStubLibDir, "libnvidia-ml.so.1");
  std::unique_ptr<NvmlBackend> b = Open(o);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->name(), "nvml");
}

TEST_F(NvmlBackendTest, MissingRequiredSymbolIsNamed) {
  NvmlOptions o = Options();
  o.driver_root = kBrokenStubRoot;  // usr/lib; no nvmlDeviceGetPciInfo_v3
  absl::StatusOr<std::unique_ptr<NvmlBackend>> b = NvmlBackend::Open(o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("nvmlDeviceGetPciInfo_v3"));
  EXPECT_THAT(std::string(b.status().message()), HasSubstr(kBrokenStubRoot));
}

TEST_F(NvmlBackendTest, InitFailureCarriesNvmlCode) {
  stub_.fail_next("nvmlInit_v2", 9);  // DRIVER_NOT_LOADED
  absl::StatusOr<std::unique_ptr<NvmlBackend>> b = NvmlBackend::Open(Options());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(NvmlErrorOf(b.status()), NvmlError::kDriverNotLoaded);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("nvmlInit_v2"));
  EXPECT_EQ(stub_.init_count(), 0);
}

TEST_F(NvmlBackendTest, DiscoversDriverAndGpuIdentity) {
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  absl::StatusOr<NodeInventory> inv = b->Discover();
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->driver_version, "550.54.15");
  EXPECT_EQ(inv->cuda_driver_version, "12.4");
  ASSERT_EQ(inv->gpus.size(), 2u);

  const api::GpuInfo& h100 = inv->gpus[0];
  EXPECT_EQ(h100.index, 0);
  EXPECT_EQ(h100.uuid, kH100Uuid);
  EXPECT_EQ(h100.product, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(h100.model, "h100-80gb");
  EXPECT_EQ(h100.memory.ToString(), "81559Mi");
  EXPECT_EQ(h100.compute_capability, "9.0");
  EXPECT_EQ(h100.pci_bus_id, "0000:65:00.0");
  EXPECT_EQ(h100.minor_number, 0);
  EXPECT_TRUE(h100.mig_capable);
  EXPECT_TRUE(h100.mig_enabled);
  EXPECT_EQ(h100.health, api::HealthState::kHealthy);
  EXPECT_TRUE(h100.mig_instances.empty());

  const api::GpuInfo& a100 = inv->gpus[1];
  EXPECT_EQ(a100.model, "a100-40gb");
  EXPECT_EQ(a100.pci_bus_id, "0000:b3:00.0");  // NVML prints "00000000:B3:00.0"
  EXPECT_EQ(a100.compute_capability, "8.0");
  EXPECT_EQ(a100.minor_number, 1);
  EXPECT_TRUE(a100.mig_capable);
  EXPECT_FALSE(a100.mig_enabled);
  EXPECT_TRUE(a100.mig_profiles.empty());
}

TEST_F(NvmlBackendTest, ProfilesAndPlacementsEqualTheCatalogue) {
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  const api::GpuInfo h100 = Gpu(*b, 0);
  const partitioner::GpuModel* model = partitioner::FindBuiltinModel("h100-80gb");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(SortedById(h100.mig_profiles), SortedById(partitioner::InventoryProfiles(*model)));
  absl::StatusOr<partitioner::GpuModel> from_node =
      partitioner::ModelFromInventory(h100, "550.54.15");
  EXPECT_TRUE(from_node.ok()) << from_node.status();
}

TEST_F(NvmlBackendTest, ProfileInfoFallsBackToOlderStructVersions) {
  const std::vector<api::MigProfileInfo> expected =
      SortedById(partitioner::InventoryProfiles(*partitioner::FindBuiltinModel("h100-80gb")));
  for (int version : {2, 1}) {
    stub_.set_max_profile_info_version(version);
    std::unique_ptr<NvmlBackend> b = Open();
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(SortedById(Gpu(*b, 0).mig_profiles), expected) << "newest version " << version;
  }
}

TEST_F(NvmlBackendTest, CreatesAtThePlacementAndDiscoverShowsIt) {
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  absl::StatusOr<api::MigInstanceInfo> created = b->CreateMigInstance(0, k3g40gb, {4, 4});
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->profile, "3g.40gb");
  EXPECT_EQ(created->placement, (api::Placement{4, 4}));
  EXPECT_GT(created->gpu_instance_id, 0);
  EXPECT_EQ(created->compute_instance_id, 0);
  EXPECT_THAT(created->uuid, StartsWith("MIG-"));
  EXPECT_TRUE(created->created_by_tessera);

  const api::GpuInfo h100 = Gpu(*b, 0);
  ASSERT_EQ(h100.mig_instances.size(), 1u);
  api::MigInstanceInfo expected = *created;
  expected.created_by_tessera = false;  // NVML does not know who made it
  EXPECT_EQ(h100.mig_instances[0], expected);
}

TEST_F(NvmlBackendTest, MemoryUsedOfTheGpuAndOfOneMigInstance) {
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  absl::StatusOr<api::MigInstanceInfo> first = b->CreateMigInstance(0, k1g10gb, {6, 1});
  absl::StatusOr<api::MigInstanceInfo> second = b->CreateMigInstance(0, k3g40gb, {0, 4});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  // The stub reports 512 MiB on a GPU and 64 MiB per GI ID on a MIG device.
  absl::StatusOr<std::int64_t> used = b->MemoryUsed(0, Gpu(*b, 0).uuid);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, 512 << 20);
  used = b->MemoryUsed(0, second->uuid);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, second->gpu_instance_id * (64 << 20));
  used = b->MemoryUsed(0, first->uuid);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, first->gpu_instance_id * (64 << 20));
  used = b->MemoryUsed(0, "MIG-not-there");
  EXPECT_EQ(NvmlErrorOf(used.status()), NvmlError::kNotFound) << used.status();
  EXPECT_THAT(std::string(used.status().message()), HasSubstr("MIG-not-there"));
  EXPECT_FALSE(b->MemoryUsed(7, "GPU-x").ok());
}

TEST_F(NvmlBackendTest, TakesTheUuidFromTheComputeInstanceHandleWhenItIsTheMigDevice) {
  stub_.set_ci_info_device_is_mig(1);
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  absl::StatusOr<api::MigInstanceInfo> first = b->CreateMigInstance(0, k1g10gb, {6, 1});
  absl::StatusOr<api::MigInstanceInfo> second = b->CreateMigInstance(0, k1g10gb, {5, 1});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(first->uuid, second->uuid);
  const api::GpuInfo h100 = Gpu(*b, 0);
  ASSERT_EQ(h100.mig_instances.size(), 2u);
  EXPECT_EQ(h100.mig_instances[0].uuid, second->uuid);  // sorted by placement
  EXPECT_EQ(h100.mig_instances[1].uuid, first->uuid);
}

TEST_F(NvmlBackendTest, OverlappingPlacementIsInsufficientResources) {
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->CreateMigInstance(0, k3g40gb, {4, 4}).ok());
  absl::StatusOr<api::MigInstanceInfo> overlap = b->CreateMigInstance(0, k2g20gb, {4, 2});
  ASSERT_FALSE(overlap.ok());
  EXPECT_EQ(NvmlErrorOf(overlap.status()), NvmlError::kInsufficientResources);
  EXPECT_EQ(overlap.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(overlap.status().message()),
              HasSubstr("nvmlDeviceCreateGpuInstanceWithPlacement(GPU 0, profile 14"));
  EXPECT_EQ(Gpu(*b, 0).mig_instances.size(), 1u);
}

TEST_F(NvmlBackendTest, FailedComputeInstanceDestroysTheNewGpuInstance) {
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  stub_.fail_next("nvmlGpuInstanceCreateComputeInstance", 23);
  absl::StatusOr<api::MigInstanceInfo> created = b->CreateMigInstance(0, k3g40gb, {0, 4});
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(NvmlErrorOf(created.status()), NvmlError::kInsufficientResources);
  EXPECT_THAT(std::string(created.status().message()),
              HasSubstr("nvmlGpuInstanceCreateComputeInstance(GPU 0"));
  EXPECT_THAT(std::string(created.status().message()), HasSubstr("destroyed again"));
  EXPECT_TRUE(Gpu(*b, 0).mig_instances.empty());
  EXPECT_TRUE(b->CreateMigInstance(0, k3g40gb, {0, 4}).ok()) << "the placement is free again";
}

TEST_F(NvmlBackendTest, CreateOnAGpuWithoutMigIsNotSupported) {
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(NvmlErrorOf(b->CreateMigInstance(1, k3g40gb, {0, 4}).status()),
            NvmlError::kNotSupported);
  EXPECT_EQ(NvmlErrorOf(b->CreateMigInstance(7, k3g40gb, {0, 4}).status()),
            NvmlError::kInvalidArgument);
  EXPECT_EQ(NvmlErrorOf(b->CreateMigInstance(0, 42, {0, 4}).status()), NvmlError::kInvalidArgument);
}

TEST_F(NvmlBackendTest, DestroysComputeInstancesThenTheGpuInstance) {
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  absl::StatusOr<api::MigInstanceInfo> created = b->CreateMigInstance(0, k3g40gb, {0, 4});
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(b->DestroyMigInstance(0, created->gpu_instance_id).ok());
  EXPECT_TRUE(Gpu(*b, 0).mig_instances.empty());
  const absl::Status again = b->DestroyMigInstance(0, created->gpu_instance_id);
  EXPECT_EQ(NvmlErrorOf(again), NvmlError::kNotFound);
  EXPECT_EQ(again.code(), absl::StatusCode::kNotFound);
}

TEST_F(NvmlBackendTest, DestroyOfAnInstanceInUseIsInUseAndChangesNothing) {
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  absl::StatusOr<api::MigInstanceInfo> created = b->CreateMigInstance(0, k3g40gb, {0, 4});
  ASSERT_TRUE(created.ok()) << created.status();
  stub_.set_in_use(0, static_cast<unsigned int>(created->gpu_instance_id), 1);
  const absl::Status busy = b->DestroyMigInstance(0, created->gpu_instance_id);
  EXPECT_EQ(NvmlErrorOf(busy), NvmlError::kInUse);
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition);
  const api::GpuInfo h100 = Gpu(*b, 0);
  ASSERT_EQ(h100.mig_instances.size(), 1u);
  EXPECT_EQ(h100.mig_instances[0].uuid, created->uuid);

  stub_.set_in_use(0, static_cast<unsigned int>(created->gpu_instance_id), 0);
  EXPECT_TRUE(b->DestroyMigInstance(0, created->gpu_instance_id).ok());
}

TEST_F(NvmlBackendTest, CriticalXidMakesTheGpuUnhealthy) {
  std::unique_ptr<NvmlBackend> b = Open(Options(/*watch_events=*/true));
  ASSERT_NE(b, nullptr);
  // Only the health events the GPU supports: of the stub's 0x1F, Xid and double-bit ECC.
  EXPECT_EQ(stub_.registered_events(0), kXidEvent | kDoubleBitEccEvent);
  ASSERT_EQ(stub_.queue_xid(0, 79), 1);
  ASSERT_TRUE(WaitForGpu(
      *b, 0, [](const api::GpuInfo& g) { return g.health == api::HealthState::kUnhealthy; }));
  EXPECT_EQ(Gpu(*b, 0).health_message, "Xid 79");
  EXPECT_EQ(Gpu(*b, 1).health, api::HealthState::kHealthy);
}

TEST_F(NvmlBackendTest, XidOfAMigInstanceNamesIt) {
  std::unique_ptr<NvmlBackend> b = Open(Options(/*watch_events=*/true));
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(stub_.queue_event(0, kXidEvent, 48, 2, 0), 1);
  ASSERT_TRUE(WaitForGpu(
      *b, 0, [](const api::GpuInfo& g) { return g.health == api::HealthState::kUnhealthy; }));
  EXPECT_EQ(Gpu(*b, 0).health_message, "Xid 48 (GI 2, CI 0)");
}

TEST_F(NvmlBackendTest, ApplicationXidIsOnlyLogged) {
  std::unique_ptr<NvmlBackend> b = Open(Options(/*watch_events=*/true));
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(stub_.queue_xid(0, 13), 1);
  // Events arrive in order: once GPU 1's Xid shows, GPU 0's has been handled.
  ASSERT_EQ(stub_.queue_event(1, kDoubleBitEccEvent, 0, kNoInstance, kNoInstance), 1);
  ASSERT_TRUE(WaitForGpu(
      *b, 1, [](const api::GpuInfo& g) { return g.health == api::HealthState::kUnhealthy; }));
  EXPECT_EQ(Gpu(*b, 1).health_message, "double-bit ECC error");
  EXPECT_EQ(Gpu(*b, 0).health, api::HealthState::kHealthy);
  EXPECT_THAT(Logged(), HasSubstr("GPU 0: Xid 13"));
}

TEST_F(NvmlBackendTest, LostGpuIsReportedUnhealthy) {
  std::unique_ptr<NvmlBackend> b = Open();
  ASSERT_NE(b, nullptr);
  stub_.set_gpu_lost(0);
  absl::StatusOr<NodeInventory> inv = b->Discover();
  ASSERT_TRUE(inv.ok()) << inv.status();
  ASSERT_EQ(inv->gpus.size(), 2u);
  EXPECT_EQ(inv->gpus[0].uuid, kH100Uuid);
  EXPECT_EQ(inv->gpus[0].health, api::HealthState::kUnhealthy);
  EXPECT_EQ(inv->gpus[0].health_message, "GPU is lost");
  EXPECT_EQ(inv->gpus[1].health, api::HealthState::kHealthy);
}

TEST_F(NvmlBackendTest, EventThreadSeesALostGpu) {
  std::unique_ptr<NvmlBackend> b = Open(Options(/*watch_events=*/true));
  ASSERT_NE(b, nullptr);
  stub_.set_gpu_lost(1);
  ASSERT_TRUE(
      WaitForGpu(*b, 1, [](const api::GpuInfo& g) { return g.health_message == "GPU is lost"; }));
  EXPECT_EQ(Gpu(*b, 0).health, api::HealthState::kHealthy);
}

TEST_F(NvmlBackendTest, DestructorStopsEventsPromptlyAndShutsNvmlDown) {
  std::unique_ptr<NvmlBackend> b = Open(Options(/*watch_events=*/true));
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(stub_.init_count(), 1);
  EXPECT_EQ(stub_.event_set_count(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the thread start waiting
  const auto start = std::chrono::steady_clock::now();
  b.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(stub_.init_count(), 0);
  EXPECT_EQ(stub_.event_set_count(), 0);
  EXPECT_LE(stub_.max_wait_timeout_ms(), 500u);
}

TEST_F(NvmlBackendTest, SetTimeSliceRunsNvidiaSmiWithTheGpuUuid) {
  NvmlOptions o = Options();
  o.nvidia_smi_path =
      Script("nvidia-smi", "for a in \"$@\"; do echo \"$a\"; done > " + (dir_ / "argv").string() +
                               "\necho \"$LD_LIBRARY_PATH\" > " + (dir_ / "env").string());
  std::unique_ptr<NvmlBackend> b = Open(o);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->SetTimeSlice(0, api::TimeSliceInterval::kMedium).ok());
  EXPECT_EQ(ReadFile(dir_ / "argv"),
            std::string("compute-policy\n-i\n") + kH100Uuid + "\n--set-timeslice\n2\n");
  // Outside "/", nvidia-smi must find the driver root's libnvidia-ml.so.1.
  EXPECT_THAT(ReadFile(dir_ / "env"), StartsWith(kStubLibDir));
}

TEST_F(NvmlBackendTest, SetTimeSliceFailureNamesCommandExitCodeAndStderr) {
  NvmlOptions o = Options();
  o.nvidia_smi_path = Script("nvidia-smi", "echo 'Insufficient Permissions' >&2\nexit 4");
  std::unique_ptr<NvmlBackend> b = Open(o);
  ASSERT_NE(b, nullptr);
  const absl::Status s = b->SetTimeSlice(1, api::TimeSliceInterval::kLong);
  ASSERT_FALSE(s.ok());
  const std::string message(s.message());
  EXPECT_THAT(message, HasSubstr(o.nvidia_smi_path + " compute-policy -i GPU-"));
  EXPECT_THAT(message, HasSubstr("--set-timeslice 3"));
  EXPECT_THAT(message, HasSubstr("exit code 4"));
  EXPECT_THAT(message, HasSubstr("Insufficient Permissions"));
}

TEST_F(NvmlBackendTest, SetTimeSliceKillsAHungNvidiaSmi) {
  NvmlOptions o = Options();
  o.nvidia_smi_path = Script("nvidia-smi", "exec sleep 30");
  o.nvidia_smi_timeout = std::chrono::milliseconds(200);
  std::unique_ptr<NvmlBackend> b = Open(o);
  ASSERT_NE(b, nullptr);
  const auto start = std::chrono::steady_clock::now();
  const absl::Status s = b->SetTimeSlice(0, api::TimeSliceInterval::kShort);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
}

TEST_F(NvmlBackendTest, OldDriverDiscoversButCannotCreateAtAPlacement) {
  NvmlOptions o = Options();
  o.driver_root = kOldStubRoot;  // usr/lib64; no CreateGpuInstanceWithPlacement, no ...InfoV
  std::unique_ptr<NvmlBackend> b = Open(o);
  ASSERT_NE(b, nullptr);
  const api::GpuInfo h100 = Gpu(*b, 0);
  EXPECT_EQ(
      SortedById(h100.mig_profiles),
      SortedById(partitioner::InventoryProfiles(*partitioner::FindBuiltinModel("h100-80gb"))));
  EXPECT_FALSE(b->DynamicMigSupport().ok());
  absl::StatusOr<api::MigInstanceInfo> created = b->CreateMigInstance(0, k3g40gb, {0, 4});
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(NvmlErrorOf(created.status()), NvmlError::kNotSupported);
  EXPECT_THAT(std::string(created.status().message()),
              HasSubstr("nvmlDeviceCreateGpuInstanceWithPlacement"));
  EXPECT_THAT(Logged(), HasSubstr("nvmlDeviceCreateGpuInstanceWithPlacement"));
}

TEST_F(NvmlBackendTest, CallsForDifferentGpusMayRunConcurrently) {
  std::unique_ptr<NvmlBackend> b = Open(Options(/*watch_events=*/true));
  ASSERT_NE(b, nullptr);
  std::thread mig([&] {
    for (int i = 0; i < 20; ++i) {
      absl::StatusOr<api::MigInstanceInfo> c = b->CreateMigInstance(0, k1g10gb, {i % 7, 1});
      EXPECT_TRUE(c.ok()) << c.status();
      if (c.ok()) {
        EXPECT_TRUE(b->DestroyMigInstance(0, c->gpu_instance_id).ok());
      }
    }
  });
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(b->Discover().ok());
    stub_.queue_xid(1, 31);
  }
  mig.join();
  EXPECT_TRUE(Gpu(*b, 0).mig_instances.empty());
  EXPECT_EQ(Gpu(*b, 1).health, api::HealthState::kHealthy);
}

}  // namespace
}  // namespace tessera::plugin
