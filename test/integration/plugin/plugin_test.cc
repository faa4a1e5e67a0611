// The kubelet plugin in one process, driven by a fake kubelet over real unix sockets and gRPC:
// registration, prepare/unprepare of every mode, idempotency, errors, parallelism, health.
#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tessera/plugin/cdi.h"
#include "tessera/plugin/checkpoint.h"
#include "tessera/plugin/device_nodes.h"
#include "tessera/plugin/driver_files.h"
#include "tessera/plugin/fake_backend.h"
#include "tessera/plugin/files.h"
#include "tessera/plugin/mps.h"
#include "tessera/plugin/prepare.h"
#include "tessera/plugin/server.h"
#include "test/integration/plugin/fake_kubelet.h"
#include "test/integration/plugin/plugin_env.h"

namespace tessera::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kNode[] = "node-a";

// GPUs 0-3: H100 80GB with MIG on; 4-5: A100 40GB with MIG off.
constexpr char kGpus[] = R"(
createLatencyMs: 0
gpus:
- model: h100-80gb
  count: 4
- model: a100-40gb
  count: 2
  migEnabled: false
)";

class PluginTest : public ::testing::Test {
 protected:
  void SetUp() override { Boot(kGpus); }
  void TearDown() override { Shutdown(); }

  void Boot(const std::string& gpus_yaml, plugin::ServerOptions server_options = {},
            plugin::LockScope lock_scope = plugin::LockScope::kGpu) {
    WriteHostProc(dir_ / "host");
    absl::StatusOr<plugin::FakeNodeSpec> spec = plugin::ParseFakeNodeSpec(gpus_yaml);
    ASSERT_TRUE(spec.ok()) << spec.status();
    auto backend = plugin::FakeGpuBackend::Open(*spec, dir_ / "fake-state.json");
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = *std::move(backend);
    plugin::CheckpointLoadReport report;
    auto store = plugin::CheckpointStore::Open(dir_ / "checkpoint", "boot-1", &report);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    cdi_ = std::make_unique<plugin::CdiWriter>(dir_ / "cdi");
    auto nodes = plugin::DeviceNodes::Load(dir_ / "host");
    ASSERT_TRUE(nodes.ok()) << nodes.status();
    nodes_ = std::make_unique<plugin::DeviceNodes>(*std::move(nodes));
    mps_ = std::make_unique<plugin::MpsManager>(
        plugin::MpsOptions{.control_binary = TESSERA_FAKE_MPS_CONTROL, .root_dir = dir_ / "mps"});
    preparer_ = std::make_unique<plugin::Preparer>(
        plugin::PreparerOptions{.driver_name = "gpu.tessera.dev",
                                .node_name = kNode,
                                .lock_dir = dir_ / "locks",
                                .lock_scope = lock_scope,
                                .driver_files = driver_files_.get()},
        *backend_, *store_, *cdi_, *nodes_, mps_.get(), claims_);
    auto reconciled = preparer_->Start();
    ASSERT_TRUE(reconciled.ok()) << reconciled.status();
    server_options.registrar_dir = dir_ / "plugins_registry";
    server_options.plugin_dir = dir_ / "plugins/gpu.tessera.dev";
    server_ = std::make_unique<plugin::PluginServer>(server_options, *preparer_);
    ASSERT_TRUE(server_->Start().ok());
  }

  void Shutdown() {
    if (server_) server_->Stop();
    if (mps_) {
      for (const plugin::MpsDaemon& d : mps_->List()) (void)mps_->Stop(d.device_uuid);
    }
  }

  // Registers, then prepares `claims` and returns the replies.
  std::map<std::string, ClaimReply> Prepare(const std::vector<KubeletClaim>& claims) {
    EnsureRegistered();
    std::map<std::string, ClaimReply> out;
    grpc::Status s = kubelet_.Prepare(claims, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }
  std::map<std::string, ClaimReply> Unprepare(const std::vector<KubeletClaim>& claims) {
    EnsureRegistered();
    std::map<std::string, ClaimReply> out;
    grpc::Status s = kubelet_.Unprepare(claims, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }
  void EnsureRegistered() {
    if (!kubelet_.service().empty()) return;
    pluginregistration::PluginInfo info;
    ASSERT_TRUE(kubelet_.Register(server_->registration_socket(), &info).ok());
  }

  KubeletClaim Claim(const std::string& name, const std::string& uid,
                     const std::vector<Allocation>& allocations,
                     const std::vector<OpaqueConfig>& configs = {}) {
    claims_.Put(AllocatedClaim(name, uid, allocations, configs, kNode));
    return {.namespace_ = "default", .name = name, .uid = uid};
  }

  nlohmann::json CdiSpec(const std::string& uid) {
    absl::StatusOr<std::string> text = plugin::ReadWholeFile(cdi_->SpecPath(uid));
    if (!text.ok()) return nullptr;
    return nlohmann::json::parse(*text);
  }
  int Instances(int gpu) {
    auto inv = backend_->Discover();
    return inv.ok() ? static_cast<int>(inv->gpus[gpu].mig_instances.size()) : -1;
  }
  // Prepares every claim at once, one kubelet connection and thread each; the error of each ("" or
  // the claim's error or the gRPC error).
  std::vector<std::string> PrepareConcurrently(const std::vector<KubeletClaim>& claims) {
    std::vector<std::string> errors(claims.size());
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < claims.size(); ++i) {
      threads.emplace_back([&, i] {
        FakeKubelet k;
        k.Connect(server_->dra_socket(), "v1.DRAPlugin");
        std::map<std::string, ClaimReply> out;
        grpc::Status s = k.Prepare({claims[i]}, &out);
        errors[i] = s.ok() ? out[claims[i].uid].error : s.error_message();
      });
    }
    for (auto& t : threads) t.join();
    return errors;
  }

  TempDir dir_;
  MapClaimReader claims_;
  std::unique_ptr<plugin::FakeGpuBackend> backend_;
  std::unique_ptr<plugin::CheckpointStore> store_;
  std::unique_ptr<plugin::CdiWriter> cdi_;
  std::unique_ptr<plugin::DeviceNodes> nodes_;
  std::unique_ptr<plugin::MpsManager> mps_;
  std::unique_ptr<plugin::DriverFiles> driver_files_;  // null unless a test sets one up
  std::unique_ptr<plugin::Preparer> preparer_;
  std::unique_ptr<plugin::PluginServer> server_;
  FakeKubelet kubelet_;
};

TEST_F(PluginTest, RegistrationAdvertisesDriverEndpointAndVersionsInOrder) {
  pluginregistration::PluginInfo info;
  ASSERT_TRUE(kubelet_.Register(server_->registration_socket(), &info).ok());
  EXPECT_EQ(info.type(), "DRAPlugin");
  EXPECT_EQ(info.name(), "gpu.tessera.dev");
  EXPECT_EQ(info.endpoint(), dir_ / "plugins/gpu.tessera.dev/dra.sock");
  EXPECT_THAT(
      std::vector<std::string>(info.supported_versions().begin(), info.supported_versions().end()),
      ElementsAre("v1.DRAPlugin", "v1beta1.DRAPlugin", "v1.DRAResourceHealth",
                  "v1alpha1.DRAResourceHealth"));
  EXPECT_EQ(kubelet_.service(), "v1.DRAPlugin");
  EXPECT_TRUE(server_->registration().registered);
  EXPECT_EQ(server_->registration_socket(), dir_ / "plugins_registry/gpu.tessera.dev-reg.sock");
}

TEST_F(PluginTest, RefusedRegistrationIsRecordedAndAnsweredWithAnError) {
  pluginregistration::PluginInfo info;
  grpc::Status s = kubelet_.Register(server_->registration_socket(), &info, /*accept=*/false,
                                     "endpoint already registered");
  EXPECT_FALSE(s.ok());
  const plugin::RegistrationState r = server_->registration();
  EXPECT_TRUE(r.notified);
  EXPECT_FALSE(r.registered);
  EXPECT_EQ(r.error, "endpoint already registered");
}

TEST_F(PluginTest, SocketsAreOwnerOnly) {
  struct stat st {};
  ASSERT_EQ(::stat(server_->dra_socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(server_->registration_socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(PluginTest, PreparesWholeGpuWithCdiSpec) {
  KubeletClaim c = Claim("whole", "uid-whole", {{.request = "gpu", .device = "gpu-4"}});
  auto replies = Prepare({c});
  ASSERT_EQ(replies.size(), 1u);
  const ClaimReply& r = replies["uid-whole"];
  ASSERT_EQ(r.error, "");
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_EQ(r.devices[0].pool, kNode);
  EXPECT_EQ(r.devices[0].device, "gpu-4");
  EXPECT_THAT(r.devices[0].request_names, ElementsAre("gpu"));
  EXPECT_THAT(r.devices[0].cdi_ids, ElementsAre("k8s.gpu.tessera.dev/claim=uid-whole-gpu-4"));
  nlohmann::json spec = CdiSpec("uid-whole");
  ASSERT_FALSE(spec.is_null());
  EXPECT_EQ(spec["kind"], "k8s.gpu.tessera.dev/claim");
  EXPECT_EQ(spec["devices"][0]["name"], "uid-whole-gpu-4");
  EXPECT_EQ(spec["devices"][0]["containerEdits"]["deviceNodes"][0]["path"], "/dev/nvidia4");
  EXPECT_THAT(spec["containerEdits"]["env"].dump(), HasSubstr("CUDA_VISIBLE_DEVICES=GPU-"));
  EXPECT_FALSE(spec["containerEdits"].contains("mounts"));  // no driver files configured

  auto un = Unprepare({c});
  EXPECT_EQ(un["uid-whole"].error, "");
  EXPECT_TRUE(CdiSpec("uid-whole").is_null());
}

TEST_F(PluginTest, CdiSpecMountsTheDriverFilesForEveryClaim) {
  Shutdown();
  server_.reset();
  preparer_.reset();
  // A driver container's root as the plugin sees it; the host sees it at /run/nvidia/driver.
  const std::string lib = plugin::LibraryDirs().front();
  WriteFile(dir_ / ("driver/" + lib + "/libcuda.so.550.54.15"), "elf");
  std::filesystem::create_symlink("libcuda.so.550.54.15",
                                  dir_ / ("driver/" + lib + "/libcuda.so.1"));
  WriteFile(dir_ / "driver/usr/bin/nvidia-smi", "elf");
  driver_files_ = std::make_unique<plugin::DriverFiles>(plugin::DriverFilesOptions{
      .driver_root = dir_ / "driver", .host_driver_root = "/run/nvidia/driver"});
  ASSERT_TRUE(driver_files_->Refresh().ok());
  Boot(kGpus);

  const nlohmann::json options = {"ro", "nosuid", "nodev", "rbind", "rprivate"};
  const nlohmann::json mounts = {
      {{"hostPath", "/run/nvidia/driver/" + lib + "/libcuda.so.550.54.15"},
       {"containerPath", "/" + lib + "/libcuda.so.1"},
       {"options", options}},
      {{"hostPath", "/run/nvidia/driver/usr/bin/nvidia-smi"},
       {"containerPath", "/usr/bin/nvidia-smi"},
       {"options", options}}};
  KubeletClaim whole = Claim("whole", "uid-whole", {{.device = "gpu-4"}});
  KubeletClaim mig = Claim("mig", "uid-mig", {{.device = "gpu-1-mig-3g40gb-p4"}});
  auto replies = Prepare({whole, mig});
  ASSERT_EQ(replies["uid-whole"].error, "");
  ASSERT_EQ(replies["uid-mig"].error, "");
  for (const char* uid : {"uid-whole", "uid-mig"}) {
    const nlohmann::json spec = CdiSpec(uid);
    ASSERT_FALSE(spec.is_null()) << uid;
    EXPECT_EQ(spec["containerEdits"]["mounts"], mounts) << uid;
    EXPECT_THAT(spec["containerEdits"]["env"].dump(), HasSubstr("NVIDIA_VISIBLE_DEVICES=void"));
    // The claim-level edits carry the files once; the devices carry only their own nodes.
    EXPECT_FALSE(spec["devices"][0]["containerEdits"].contains("mounts")) << uid;
  }
  // The spec reads back whole (the checkpoint can be rebuilt from it).
  absl::StatusOr<plugin::CdiClaimSpec> read = cdi_->Read("uid-whole");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->common.mounts, driver_files_->Mounts());
}

TEST_F(PluginTest, MigDeviceIsCreatedAtItsPlacementAndDestroyedOnUnprepare) {
  KubeletClaim c =
      Claim("mig", "uid-mig", {{.request = "gpu/small", .device = "gpu-1-mig-3g40gb-p4"}});
  auto r = Prepare({c})["uid-mig"];
  ASSERT_EQ(r.error, "");
  EXPECT_THAT(r.devices[0].request_names, ElementsAre("gpu"));  // the parent request
  auto inv = backend_->Discover();
  ASSERT_EQ(inv->gpus[1].mig_instances.size(), 1u);
  EXPECT_EQ(inv->gpus[1].mig_instances[0].profile, "3g.40gb");
  EXPECT_EQ(inv->gpus[1].mig_instances[0].placement.start, 4);
  const int gi = inv->gpus[1].mig_instances[0].gpu_instance_id;
  // The container gets the GPU and the GI/CI access capabilities.
  nlohmann::json nodes = CdiSpec("uid-mig")["devices"][0]["containerEdits"]["deviceNodes"];
  ASSERT_EQ(nodes.size(), 3u);
  EXPECT_EQ(nodes[0]["path"], "/dev/nvidia1");
  EXPECT_EQ(nodes[1]["path"], "/dev/nvidia-caps/nvidia-cap" + std::to_string(3 + 135 + 9 * gi));
  EXPECT_EQ(nodes[1]["major"], 508);

  EXPECT_EQ(Unprepare({c})["uid-mig"].error, "");
  EXPECT_EQ(Instances(1), 0);
  EXPECT_EQ(backend_->destroys(), 1);
}

TEST_F(PluginTest, PreExistingInstanceIsUsedButNeverDestroyed) {
  ASSERT_TRUE(backend_->CreateMigInstance(2, 9, {4, 4}).ok());  // "an admin made it"
  const int creates = backend_->creates();
  KubeletClaim c = Claim("static", "uid-static", {{.device = "gpu-2-mig-3g40gb-p4"}});
  ASSERT_EQ(Prepare({c})["uid-static"].error, "");
  EXPECT_EQ(backend_->creates(), creates);
  EXPECT_EQ(Unprepare({c})["uid-static"].error, "");
  EXPECT_EQ(Instances(2), 1);
}

TEST_F(PluginTest, RepeatedPrepareReturnsTheSameDevicesWithoutActingAgain) {
  KubeletClaim c = Claim("again", "uid-again", {{.device = "gpu-0-mig-1g10gb-p6"}});
  auto first = Prepare({c})["uid-again"];
  ASSERT_EQ(first.error, "");
  const int gets = claims_.gets();
  auto second = Prepare({c})["uid-again"];
  EXPECT_EQ(second.error, "");
  EXPECT_EQ(second.devices, first.devices);
  EXPECT_EQ(backend_->creates(), 1);
  EXPECT_EQ(claims_.gets(), gets);  // not even read again
}

TEST_F(PluginTest, UnprepareOfUnknownClaimSucceeds) {
  auto r = Unprepare({{.namespace_ = "default", .name = "ghost", .uid = "uid-ghost"}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r["uid-ghost"].error, "");
}

TEST_F(PluginTest, UidMismatchFailsTheClaimNamingIt) {
  Claim("replaced", "uid-new", {{.device = "gpu-0"}});
  auto r = Prepare({{.namespace_ = "default", .name = "replaced", .uid = "uid-old"}});
  EXPECT_THAT(r["uid-old"].error, HasSubstr("claim default/replaced got replaced"));
  EXPECT_THAT(r["uid-old"].error, HasSubstr("uid-new"));
}

TEST_F(PluginTest, UnallocatedAndMissingClaimsFail) {
  api::ResourceClaim pending = AllocatedClaim("pending", "uid-pending", {});
  pending.status.allocation.reset();
  claims_.Put(pending);
  auto r = Prepare({{.namespace_ = "default", .name = "pending", .uid = "uid-pending"},
                    {.namespace_ = "default", .name = "absent", .uid = "uid-absent"}});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_THAT(r["uid-pending"].error, HasSubstr("claim default/pending is not allocated"));
  EXPECT_THAT(r["uid-absent"].error, HasSubstr("get claim default/absent"));
}

TEST_F(PluginTest, ResultsOfOtherDriversAreIgnored) {
  KubeletClaim c = Claim("mixed", "uid-mixed",
                         {{.request = "nic", .device = "eth0", .driver = "net.example.com"},
                          {.request = "gpu", .device = "gpu-5"}});
  auto r = Prepare({c})["uid-mixed"];
  ASSERT_EQ(r.error, "");
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_EQ(r.devices[0].device, "gpu-5");
}

TEST_F(PluginTest, DeviceOfAnotherPoolIsRefused) {
  claims_.Put(AllocatedClaim("elsewhere", "uid-else", {{.device = "gpu-0"}}, {}, "node-b"));
  auto r = Prepare({{.namespace_ = "default", .name = "elsewhere", .uid = "uid-else"}});
  EXPECT_THAT(r["uid-else"].error, HasSubstr("this node serves pool node-a"));
}

TEST_F(PluginTest, BadOpaqueConfigFailsTheClaimNamingTheField) {
  KubeletClaim c =
      Claim("badcfg", "uid-badcfg", {{.device = "gpu-2-mps"}},
            {{.parameters_json = R"({"apiVersion":"tessera.dev/v1alpha1","kind":"GpuConfig",
          "sharing":{"strategy":"MPS","mps":{"activeThreadPercentage":150}}})"}});
  auto r = Prepare({c})["uid-badcfg"];
  EXPECT_THAT(r.error, HasSubstr("sharing.mps.activeThreadPercentage"));
  EXPECT_THAT(r.error, HasSubstr("150"));
  EXPECT_TRUE(mps_->List().empty());  // nothing was started
  EXPECT_FALSE(store_->Get("uid-badcfg").has_value());
}

TEST_F(PluginTest, ConfigKindMustMatchTheDevice) {
  KubeletClaim c = Claim("kind", "uid-kind", {{.device = "gpu-0-mig-1g10gb-p0"}},
                         {{.parameters_json = R"({"apiVersion":"tessera.dev/v1alpha1",
                                                  "kind":"GpuConfig"})"}});
  EXPECT_THAT(Prepare({c})["uid-kind"].error, HasSubstr("use MigConfig"));
  EXPECT_EQ(backend_->creates(), 0);
}

TEST_F(PluginTest, MpsClaimsShareOneDaemonStoppedWithTheLastClaim) {
  const std::string cfg = R"({"apiVersion":"tessera.dev/v1alpha1","kind":"GpuConfig",
      "sharing":{"strategy":"MPS","mps":{"activeThreadPercentage":30}}})";
  KubeletClaim a = Claim("mps-a", "uid-mps-a",
                         {{.device = "gpu-3-mps",
                           .share_id = "share-a",
                           .consumed = {{"memory", "8Gi"}, {"compute", "30"}}}},
                         {{.parameters_json = cfg}});
  KubeletClaim b = Claim("mps-b", "uid-mps-b",
                         {{.device = "gpu-3-mps",
                           .share_id = "share-b",
                           .consumed = {{"memory", "16Gi"}, {"compute", "50"}}}});
  auto ra = Prepare({a})["uid-mps-a"];
  auto rb = Prepare({b})["uid-mps-b"];
  ASSERT_EQ(ra.error, "");
  ASSERT_EQ(rb.error, "");
  EXPECT_EQ(ra.devices[0].share_id, "share-a");
  ASSERT_EQ(mps_->List().size(), 1u);
  const std::string env_a = CdiSpec("uid-mps-a")["devices"][0]["containerEdits"]["env"].dump();
  EXPECT_THAT(env_a, HasSubstr("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=30"));  // config wins
  EXPECT_THAT(env_a, HasSubstr("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=8192M"));
  const std::string env_b = CdiSpec("uid-mps-b")["devices"][0]["containerEdits"]["env"].dump();
  EXPECT_THAT(env_b, HasSubstr("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=50"));  // consumed capacity
  EXPECT_THAT(env_b, HasSubstr("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=16384M"));

  EXPECT_EQ(Unprepare({a})["uid-mps-a"].error, "");
  EXPECT_EQ(mps_->List().size(), 1u);
  EXPECT_EQ(Unprepare({b})["uid-mps-b"].error, "");
  EXPECT_TRUE(mps_->List().empty());
}

TEST_F(PluginTest, MpsInsideADynamicMigInstanceCreatesItOnceAndDestroysItWithTheLastClaim) {
  KubeletClaim a = Claim(
      "mm-a", "uid-mm-a",
      {{.device = "gpu-0-mig-3g40gb-p0-mps", .share_id = "s1", .consumed = {{"memory", "10Gi"}}}});
  KubeletClaim b = Claim(
      "mm-b", "uid-mm-b",
      {{.device = "gpu-0-mig-3g40gb-p0-mps", .share_id = "s2", .consumed = {{"memory", "10Gi"}}}});
  ASSERT_EQ(Prepare({a})["uid-mm-a"].error, "");
  ASSERT_EQ(Prepare({b})["uid-mm-b"].error, "");
  EXPECT_EQ(backend_->creates(), 1);
  EXPECT_EQ(Instances(0), 1);
  ASSERT_EQ(mps_->List().size(), 1u);
  EXPECT_EQ(Unprepare({a})["uid-mm-a"].error, "");
  EXPECT_EQ(Instances(0), 1);
  EXPECT_EQ(Unprepare({b})["uid-mm-b"].error, "");
  EXPECT_EQ(Instances(0), 0);
  EXPECT_TRUE(mps_->List().empty());
}

TEST_F(PluginTest, TimeSliceIntervalIsSetAndRestored) {
  KubeletClaim c =
      Claim("ts", "uid-ts", {{.device = "gpu-5-ts"}},
            {{.parameters_json = R"({"apiVersion":"tessera.dev/v1alpha1","kind":"GpuConfig",
                "sharing":{"strategy":"TimeSlicing","timeSlicing":{"interval":"Long"}}})"}});
  ASSERT_EQ(Prepare({c})["uid-ts"].error, "");
  EXPECT_EQ(backend_->Discover()->gpus[5].time_slice_interval, api::TimeSliceInterval::kLong);
  KubeletClaim other =
      Claim("ts2", "uid-ts2", {{.device = "gpu-5-ts"}},
            {{.parameters_json = R"({"apiVersion":"tessera.dev/v1alpha1","kind":"GpuConfig",
                "sharing":{"strategy":"TimeSlicing","timeSlicing":{"interval":"Short"}}})"}});
  EXPECT_THAT(Prepare({other})["uid-ts2"].error, HasSubstr("runs time-slice interval Long"));
  ASSERT_EQ(Unprepare({c})["uid-ts"].error, "");
  EXPECT_EQ(backend_->Discover()->gpus[5].time_slice_interval, api::TimeSliceInterval::kDefault);
}

TEST_F(PluginTest, ExclusiveDeviceIsNeverHandedToTwoClaims) {
  KubeletClaim a = Claim("first", "uid-first", {{.device = "gpu-0"}});
  KubeletClaim b = Claim("second", "uid-second", {{.device = "gpu-0-mig-1g10gb-p0"}});
  ASSERT_EQ(Prepare({a})["uid-first"].error, "");
  EXPECT_THAT(Prepare({b})["uid-second"].error, HasSubstr("prepared for claim default/first"));
  EXPECT_EQ(backend_->creates(), 0);
}

TEST_F(PluginTest, OccupiedPlacementFailsAndNothingLeaks) {
  ASSERT_TRUE(backend_->CreateMigInstance(1, 19, {0, 1}).ok());  // 1g at slice 0, not ours
  KubeletClaim c = Claim("blocked", "uid-blocked", {{.device = "gpu-1-mig-3g40gb-p0"}});
  auto r = Prepare({c})["uid-blocked"];
  EXPECT_THAT(r.error, HasSubstr("cannot be created"));
  EXPECT_THAT(r.error, HasSubstr("NVML_ERROR_INSUFFICIENT_RESOURCES"));
  EXPECT_FALSE(store_->Get("uid-blocked").has_value());
  EXPECT_TRUE(CdiSpec("uid-blocked").is_null());
  EXPECT_EQ(Instances(1), 1);
}

TEST_F(PluginTest, InstanceInUseIsNotDestroyedAndUnprepareRetries) {
  KubeletClaim c = Claim("busy", "uid-busy", {{.device = "gpu-1-mig-1g10gb-p2"}});
  ASSERT_EQ(Prepare({c})["uid-busy"].error, "");
  const int gi = backend_->Discover()->gpus[1].mig_instances[0].gpu_instance_id;
  ASSERT_TRUE(backend_->SetInUse(1, gi, true).ok());
  EXPECT_THAT(Unprepare({c})["uid-busy"].error, HasSubstr("NVML_ERROR_IN_USE"));
  EXPECT_EQ(Instances(1), 1);
  ASSERT_TRUE(backend_->SetInUse(1, gi, false).ok());
  EXPECT_EQ(Unprepare({c})["uid-busy"].error, "");
  EXPECT_EQ(Instances(1), 0);
}

TEST_F(PluginTest, V1beta1RepliesCarryNoShareId) {
  KubeletClaim c = Claim("beta", "uid-beta", {{.device = "gpu-3-mps", .share_id = "s-9"}});
  kubelet_.Connect(server_->dra_socket(), "v1beta1.DRAPlugin");
  std::map<std::string, ClaimReply> out;
  ASSERT_TRUE(kubelet_.Prepare({c}, &out).ok());
  ASSERT_EQ(out["uid-beta"].error, "");
  EXPECT_FALSE(out["uid-beta"].devices[0].share_id.has_value());
  kubelet_.Connect(server_->dra_socket(), "v1.DRAPlugin");
  ASSERT_TRUE(kubelet_.Prepare({c}, &out).ok());
  EXPECT_EQ(out["uid-beta"].devices[0].share_id, "s-9");
}

TEST_F(PluginTest, HealthStreamSendsEveryGpuAndFollowsChanges) {
  EnsureRegistered();
  auto stub = ::v1alpha1::DRAResourceHealth::NewStub(kubelet_.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ::v1alpha1::NodeWatchResourcesRequest req;
  auto reader = stub->NodeWatchResources(&ctx, req);
  ::v1alpha1::NodeWatchResourcesResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  ASSERT_EQ(resp.devices_size(), 6);
  EXPECT_EQ(resp.devices(0).device().pool_name(), kNode);
  EXPECT_EQ(resp.devices(0).device().device_name(), "gpu-0");
  EXPECT_EQ(resp.devices(0).health(), ::v1alpha1::HEALTHY);
  ASSERT_TRUE(backend_->SetHealth(0, api::HealthState::kUnhealthy, "Xid 79").ok());
  server_->HealthChanged();
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.devices(0).health(), ::v1alpha1::UNHEALTHY);
  EXPECT_EQ(resp.devices(0).message(), "Xid 79");
  ctx.TryCancel();
}

TEST_F(PluginTest, ClaimsOnDifferentGpusPrepareInParallel) {
  Shutdown();
  server_.reset();
  preparer_.reset();
  std::filesystem::remove(dir_ / "fake-state.json");
  Boot(std::string(kGpus).replace(std::string(kGpus).find("createLatencyMs: 0"), 18,
                                  "createLatencyMs: 300"));
  EnsureRegistered();
  std::vector<KubeletClaim> claims;
  for (int g = 0; g < 4; ++g) {
    claims.push_back(Claim("par-" + std::to_string(g), "uid-par-" + std::to_string(g),
                           {{.device = "gpu-" + std::to_string(g) + "-mig-7g80gb-p0"}}));
  }
  for (const std::string& e : PrepareConcurrently(claims)) EXPECT_EQ(e, "");
  EXPECT_EQ(backend_->creates(), 4);
  EXPECT_GE(backend_->max_concurrent_creates(), 2);
}

TEST_F(PluginTest, ClaimsOnOneGpuAreSerialised) {
  Shutdown();
  server_.reset();
  preparer_.reset();
  std::filesystem::remove(dir_ / "fake-state.json");
  Boot(std::string(kGpus).replace(std::string(kGpus).find("createLatencyMs: 0"), 18,
                                  "createLatencyMs: 100"));
  std::vector<std::thread> threads;
  for (int p : {0, 2, 4, 6}) {
    KubeletClaim c = Claim("one-" + std::to_string(p), "uid-one-" + std::to_string(p),
                           {{.device = "gpu-1-mig-1g10gb-p" + std::to_string(p)}});
    threads.emplace_back([&, c] {
      FakeKubelet k;
      k.Connect(server_->dra_socket(), "v1.DRAPlugin");
      std::map<std::string, ClaimReply> out;
      EXPECT_TRUE(k.Prepare({c}, &out).ok());
      EXPECT_EQ(out[c.uid].error, "");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Instances(1), 4);
  EXPECT_EQ(backend_->max_concurrent_creates(), 1);
}

// Two claims on GPUs 0 and 1 at once with kCreateMs per MIG create; the wall time of the pair.
class LockScopeTest : public PluginTest {
 protected:
  // Long enough against the overhead of two prepares under TSan (about 0.7 s).
  static constexpr int kCreateMs = 1200;
  void SetUp() override {}
  std::chrono::milliseconds PrepareTwoGpusAtOnce(plugin::LockScope scope) {
    std::string gpus = kGpus;
    gpus.replace(gpus.find("createLatencyMs: 0"), 18,
                 "createLatencyMs: " + std::to_string(kCreateMs));
    Boot(gpus, {}, scope);
    EnsureRegistered();
    std::vector<KubeletClaim> claims;
    for (int g = 0; g < 2; ++g) {
      claims.push_back(Claim("scope-" + std::to_string(g), "uid-scope-" + std::to_string(g),
                             {{.device = "gpu-" + std::to_string(g) + "-mig-7g80gb-p0"}}));
    }
    const auto start = std::chrono::steady_clock::now();
    const std::vector<std::string> errors = PrepareConcurrently(claims);
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    for (const std::string& e : errors) EXPECT_EQ(e, "");
    EXPECT_EQ(backend_->creates(), 2);
    return elapsed;
  }
};

TEST_F(LockScopeTest, NodeScopeSerialisesClaimsOnDifferentGpus) {
  const std::chrono::milliseconds elapsed = PrepareTwoGpusAtOnce(plugin::LockScope::kNode);
  EXPECT_EQ(backend_->max_concurrent_creates(), 1);
  EXPECT_GE(elapsed.count(), 2 * kCreateMs);  // two creates, one after the other
  EXPECT_LT(elapsed.count(), 10 * kCreateMs);
}

TEST_F(LockScopeTest, GpuScopePreparesClaimsOnDifferentGpusInParallel) {
  const std::chrono::milliseconds elapsed = PrepareTwoGpusAtOnce(plugin::LockScope::kGpu);
  EXPECT_EQ(backend_->max_concurrent_creates(), 2);
  EXPECT_GE(elapsed.count(), kCreateMs);
  EXPECT_LT(elapsed.count(), 2 * kCreateMs);  // one create's time plus overhead, not two
}

TEST(LockScope, ParsesGpuAndNodeAndNamesTheAllowedValues) {
  EXPECT_EQ(*plugin::ParseLockScope("gpu"), plugin::LockScope::kGpu);
  EXPECT_EQ(*plugin::ParseLockScope("node"), plugin::LockScope::kNode);
  absl::StatusOr<plugin::LockScope> bad = plugin::ParseLockScope("socket");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "\"socket\" is not one of gpu, node");
}

TEST_F(PluginTest, PluginOfTheJournalFormatTakesOverPerClaimCheckpointFiles) {
  // A node upgraded from a version that kept one checkpoint file per claim.
  KubeletClaim c = Claim("upgrade", "uid-upgrade", {{.device = "gpu-3-mig-3g40gb-p0"}});
  ASSERT_EQ(Prepare({c})["uid-upgrade"].error, "");
  std::optional<plugin::ClaimRecord> record = store_->Get("uid-upgrade");
  ASSERT_TRUE(record.has_value());
  Shutdown();
  server_.reset();
  preparer_.reset();
  store_.reset();
  std::filesystem::remove(plugin::CheckpointStore::JournalPath(dir_ / "checkpoint"));
  WriteFile(dir_ / "checkpoint/uid-upgrade.json",
            plugin::CheckpointStore::Encode(*record, "boot-1"));
  Boot(kGpus);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "checkpoint/uid-upgrade.json"));
  EXPECT_EQ(store_->Get("uid-upgrade"), record);
  EXPECT_EQ(Prepare({c})["uid-upgrade"].error, "");  // already prepared: nothing happens
  EXPECT_EQ(Instances(3), 1);
  EXPECT_EQ(Unprepare({c})["uid-upgrade"].error, "");
  EXPECT_EQ(Instances(3), 0);  // the migrated record knew tessera created the instance
}

TEST_F(PluginTest, RestartedPluginKeepsPreparedClaimsAndSweepsStrayCdiSpecs) {
  KubeletClaim c = Claim("keep", "uid-keep", {{.device = "gpu-1-mig-3g40gb-p0"}});
  ASSERT_EQ(Prepare({c})["uid-keep"].error, "");
  ASSERT_TRUE(cdi_->Write("uid-stray", {.devices = {{.name = "gpu-0", .edits = {.env = {"A=1"}}}},
                                        .common = {},
                                        .annotations = {}})
                  .ok());
  Shutdown();
  server_.reset();
  preparer_.reset();
  Boot(kGpus);  // the fake GPUs come back from their state file
  EXPECT_EQ(Instances(1), 1);
  EXPECT_TRUE(CdiSpec("uid-stray").is_null());
  EXPECT_FALSE(CdiSpec("uid-keep").is_null());
  auto again = Prepare({c})["uid-keep"];
  EXPECT_EQ(again.error, "");
  EXPECT_EQ(Unprepare({c})["uid-keep"].error, "");
  EXPECT_EQ(Instances(1), 0);
}

TEST_F(PluginTest, LostCheckpointIsRebuiltFromTheCdiSpec) {
  KubeletClaim c = Claim("rebuild", "uid-rebuild", {{.device = "gpu-2-mig-1g10gb-p3"}});
  ASSERT_EQ(Prepare({c})["uid-rebuild"].error, "");
  Shutdown();
  server_.reset();
  preparer_.reset();
  // A journal whose second line is damaged: copied aside, its claims unknown.
  WriteFile(plugin::CheckpointStore::JournalPath(dir_ / "checkpoint"),
            "{\"journal\":\"tessera.dev/claims\",\"version\":1}\n{\"version\": 1, garbage\n");
  Boot(kGpus);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_ / "checkpoint/corrupt"),
                          std::filesystem::directory_iterator()),
            1);
  ASSERT_TRUE(store_->Get("uid-rebuild").has_value());
  EXPECT_EQ(Unprepare({c})["uid-rebuild"].error, "");
  EXPECT_EQ(Instances(2), 0);  // the restored record knew tessera created it
}

}  // namespace
}  // namespace tessera::testing

namespace tessera::testing {
namespace {

// The Preparer from many threads directly, without gRPC in between: the test the tsan preset runs
// to check tessera's own synchronisation (Debian's gRPC is not TSan-instrumented, so races reported
// through gRPC threads are not attributable).
TEST_F(PluginTest, ConcurrentPreparesAndUnpreparesFromManyThreads) {
  std::vector<plugin::ClaimRef> refs;
  for (int i = 0; i < 24; ++i) {
    std::string device =
        i < 16 ? "gpu-" + std::to_string(i / 4) + "-mig-1g10gb-p" + std::to_string(i % 4)
               : "gpu-" + std::to_string(4 + i % 2) + "-ts";
    KubeletClaim k =
        Claim("t" + std::to_string(i), "uid-t" + std::to_string(i), {{.device = device}});
    refs.push_back({.namespace_ = k.namespace_, .name = k.name, .uid = k.uid});
  }
  std::vector<std::string> errors(refs.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = t; i < refs.size(); i += 8) {
        auto prepared = preparer_->Prepare({refs[i]});
        errors[i] = prepared[refs[i].uid].error;
        if (errors[i].empty()) errors[i] = preparer_->Unprepare({refs[i]})[refs[i].uid];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& e : errors) EXPECT_EQ(e, "");
  for (int g = 0; g < 4; ++g) EXPECT_EQ(Instances(g), 0);
  EXPECT_TRUE(store_->All().empty());
}

}  // namespace
}  // namespace tessera::testing
