// CDI spec files: names the runtime resolves, JSON a CDI loader accepts at the lowest cdiVersion
// its content needs, atomic writes, a strict read-back and a sweeper for leaked files.

#include "tessera/plugin/cdi.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tessera/plugin/device_nodes.h"
#include "tessera/plugin/files.h"

namespace tessera::plugin {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Json = nlohmann::json;

// Kubernetes UIDs are UUIDs; one that begins with a letter, and one with a digit.
constexpr const char* kUid = "c0ffee00-1111-4222-8333-444455556666";
constexpr const char* kDigitUid = "6f0c1a2b-1111-4222-8333-444455556666";
constexpr const char* kSpecFile =
    "k8s.gpu.tessera.dev-claim_c0ffee00-1111-4222-8333-444455556666.json";

CdiDeviceNode Node(std::string path) { return CdiDeviceNode{.path = std::move(path)}; }

// A claim with one MIG device shared through MPS, in the shape of the partitioning guide's example.
CdiClaimSpec MigMpsSpec() {
  CdiClaimSpec spec;
  spec.devices.push_back(CdiDevice{
      .name = "gpu-0-mig-3g40gb-9-4",
      .edits = {
          .env = {"CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps"},
          .device_nodes = {CdiDeviceNode{
                               .path = "/dev/nvidia0", .type = "c", .major = 195, .minor = 0},
                           CdiDeviceNode{.path = "/dev/nvidia-caps/nvidia-cap48",
                                         .type = "c",
                                         .major = 508,
                                         .minor = 48,
                                         .file_mode = 0444}},
          .mounts = {CdiMount{.host_path = "/var/lib/tessera/mps/d1/pipe",
                              .container_path = "/tmp/nvidia-mps",
                              .options = {"rbind", "rw"}}},
      }});
  spec.common.device_nodes = {Node("/dev/nvidiactl"), Node("/dev/nvidia-uvm")};
  return spec;
}

CdiClaimSpec OneGpuSpec(std::string name = "gpu-0") {
  CdiClaimSpec spec;
  spec.devices.push_back(
      CdiDevice{.name = std::move(name), .edits = {.device_nodes = {Node("/dev/nvidia0")}}});
  return spec;
}

class CdiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("cdi-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    root_ = (dir_ / "run" / "cdi").string();  // missing: Write creates it
  }
  void TearDown() override { fs::remove_all(dir_); }

  Json WriteAndParse(CdiWriter& writer, const std::string& uid, const CdiClaimSpec& spec) {
    const absl::Status s = writer.Write(uid, spec);
    EXPECT_TRUE(s.ok()) << s;
    absl::StatusOr<std::string> text = ReadWholeFile(writer.SpecPath(uid));
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? Json::parse(*text) : Json();
  }
  std::vector<std::string> FilesInRoot() const {
    std::vector<std::string> names;
    for (const fs::directory_entry& e : fs::directory_iterator(root_)) {
      names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  void Touch(const std::string& name) const {
    fs::create_directories(root_);
    std::ofstream(fs::path(root_) / name) << "{}";
  }

  fs::path dir_;
  std::string root_;
};

TEST_F(CdiTest, NamesFileAndDevicesAfterTheClaim) {
  CdiWriter writer(root_);
  EXPECT_EQ(writer.SpecPath(kUid), (fs::path(root_) / kSpecFile).string());
  EXPECT_EQ(writer.QualifiedName(kUid, "gpu-0"),
            "k8s.gpu.tessera.dev/claim=c0ffee00-1111-4222-8333-444455556666-gpu-0");
}

TEST_F(CdiTest, KindIsAConstructorArgument) {
  CdiWriter writer(root_, "example.com/gpu");
  EXPECT_EQ(writer.SpecPath("u1"), (fs::path(root_) / "example.com-gpu_u1.json").string());
  EXPECT_EQ(writer.QualifiedName("u1", "gpu-0"), "example.com/gpu=u1-gpu-0");
}

TEST_F(CdiTest, WritesTheSpecAsJson) {
  CdiWriter writer(root_);
  const Json json = WriteAndParse(writer, kUid, MigMpsSpec());

  EXPECT_EQ(json["cdiVersion"], "0.3.0");
  EXPECT_EQ(json["kind"], "k8s.gpu.tessera.dev/claim");
  EXPECT_FALSE(json.contains("annotations"));
  ASSERT_EQ(json["devices"].size(), 1u);
  const Json& device = json["devices"][0];
  EXPECT_EQ(device["name"], std::string(kUid) + "-gpu-0-mig-3g40gb-9-4");
  const Json& edits = device["containerEdits"];
  EXPECT_EQ(edits["env"], Json::array({"CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps"}));
  EXPECT_EQ(edits["deviceNodes"][0],
            Json({{"path", "/dev/nvidia0"}, {"type", "c"}, {"major", 195}, {"minor", 0}}));
  EXPECT_EQ(edits["deviceNodes"][1], Json({{"path", "/dev/nvidia-caps/nvidia-cap48"},
                                           {"type", "c"},
                                           {"major", 508},
                                           {"minor", 48},
                                           {"fileMode", 292}}));
  EXPECT_EQ(edits["mounts"][0], Json({{"hostPath", "/var/lib/tessera/mps/d1/pipe"},
                                      {"containerPath", "/tmp/nvidia-mps"},
                                      {"options", {"rbind", "rw"}}}));
  EXPECT_EQ(json["containerEdits"],
            Json({{"deviceNodes", {{{"path", "/dev/nvidiactl"}}, {{"path", "/dev/nvidia-uvm"}}}}}));
}

TEST_F(CdiTest, LeavesOutEmptyCommonEdits) {
  CdiWriter writer(root_);
  const Json json = WriteAndParse(writer, kUid, OneGpuSpec());
  EXPECT_FALSE(json.contains("containerEdits"));
  EXPECT_EQ(json["devices"][0]["containerEdits"],
            Json({{"deviceNodes", {{{"path", "/dev/nvidia0"}}}}}));
}

TEST_F(CdiTest, HostPathEqualToPathIsLeftOutAndNeedsNoNewerVersion) {
  CdiWriter writer(root_);
  CdiClaimSpec spec = OneGpuSpec();
  spec.devices[0].edits.device_nodes[0].host_path = "/dev/nvidia0";
  const Json json = WriteAndParse(writer, kUid, spec);
  EXPECT_EQ(json["cdiVersion"], "0.3.0");
  EXPECT_FALSE(json["devices"][0]["containerEdits"]["deviceNodes"][0].contains("hostPath"));
}

TEST_F(CdiTest, DifferentHostPathNeedsVersion050) {
  CdiWriter writer(root_);
  CdiClaimSpec spec = OneGpuSpec();
  spec.common.device_nodes = {
      CdiDeviceNode{.path = "/dev/nvidiactl", .host_path = "/host/dev/nvidiactl"}};
  const Json json = WriteAndParse(writer, kUid, spec);
  EXPECT_EQ(json["cdiVersion"], "0.5.0");
  EXPECT_EQ(json["containerEdits"]["deviceNodes"][0]["hostPath"], "/host/dev/nvidiactl");
}

// CDI before 0.5.0 required device names to begin with a letter; "<uid>-gpu-0" begins with the
// UID's first character.
TEST_F(CdiTest, DeviceNameBeginningWithADigitNeedsVersion050) {
  CdiWriter writer(root_);
  const Json json = WriteAndParse(writer, kDigitUid, OneGpuSpec());
  EXPECT_EQ(json["cdiVersion"], "0.5.0");
  EXPECT_EQ(json["devices"][0]["name"], std::string(kDigitUid) + "-gpu-0");
}

TEST_F(CdiTest, AnnotationsNeedVersion060) {
  CdiWriter writer(root_);
  CdiClaimSpec spec = OneGpuSpec();
  spec.devices[0].edits.device_nodes[0].host_path = "/host/dev/nvidia0";
  spec.annotations = {{"tessera.dev/claim", "default/train"}};
  const Json json = WriteAndParse(writer, kUid, spec);
  EXPECT_EQ(json["cdiVersion"], "0.6.0");
  EXPECT_EQ(json["annotations"], Json({{"tessera.dev/claim", "default/train"}}));
}

TEST_F(CdiTest, DotInKindClassNeedsVersion060) {
  CdiWriter writer(root_, "tessera.dev/gpu.claim");
  const Json json = WriteAndParse(writer, kUid, OneGpuSpec());
  EXPECT_EQ(json["cdiVersion"], "0.6.0");
}

TEST_F(CdiTest, WriteCreatesRootAndLeavesNoTemporaryFile) {
  CdiWriter writer(root_);
  ASSERT_TRUE(writer.Write(kUid, OneGpuSpec()).ok());
  EXPECT_THAT(FilesInRoot(), ElementsAre(kSpecFile));
  struct stat st {};
  ASSERT_EQ(::stat(writer.SpecPath(kUid).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0111, 0u) << "spec files are not executable";
  EXPECT_NE(st.st_mode & 0400, 0u);
}

TEST_F(CdiTest, RewriteReplacesTheFileOnlyWhenTheContentChanges) {
  CdiWriter writer(root_);
  ASSERT_TRUE(writer.Write(kUid, OneGpuSpec()).ok());
  struct stat first {
  }, same{}, changed{};
  ASSERT_EQ(::stat(writer.SpecPath(kUid).c_str(), &first), 0);
  ASSERT_TRUE(writer.Write(kUid, OneGpuSpec()).ok());
  ASSERT_EQ(::stat(writer.SpecPath(kUid).c_str(), &same), 0);
  ASSERT_TRUE(writer.Write(kUid, OneGpuSpec("gpu-1")).ok());
  ASSERT_EQ(::stat(writer.SpecPath(kUid).c_str(), &changed), 0);

  EXPECT_EQ(same.st_ino, first.st_ino);
  EXPECT_NE(changed.st_ino, first.st_ino);  // renamed over, never rewritten in place
  absl::StatusOr<CdiClaimSpec> read = writer.Read(kUid);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->devices[0].name, "gpu-1");
}

TEST_F(CdiTest, RemoveIsIdempotent) {
  CdiWriter writer(root_);
  ASSERT_TRUE(writer.Write(kUid, OneGpuSpec()).ok());
  EXPECT_TRUE(writer.Remove(kUid).ok());
  EXPECT_FALSE(fs::exists(writer.SpecPath(kUid)));
  EXPECT_TRUE(writer.Remove(kUid).ok());
  EXPECT_TRUE(writer.Remove("never-written").ok());
}

TEST_F(CdiTest, ListClaimsIgnoresForeignFiles) {
  CdiWriter writer(root_);
  ASSERT_TRUE(writer.Write(kUid, OneGpuSpec()).ok());
  ASSERT_TRUE(writer.Write(kDigitUid, OneGpuSpec()).ok());
  Touch("nvidia.yaml");
  Touch("k8s.gpu.nvidia.com-claim_0a1b.json");          // another driver's claim
  Touch("k8s.gpu.tessera.dev-claim_0a1b.yaml");         // not our extension
  Touch("k8s.gpu.tessera.dev-claim_bad_uid.json");      // not a claim UID
  Touch("k8s.gpu.tessera.dev-claim_0a1b.json.tmp.42");  // an unfinished write
  fs::create_directories(fs::path(root_) / "k8s.gpu.tessera.dev-claim_d1.json");

  absl::StatusOr<std::vector<std::string>> claims = writer.ListClaims();
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_THAT(*claims, ElementsAre(kDigitUid, kUid));
}

TEST_F(CdiTest, ListClaimsOfAMissingDirectoryIsEmpty) {
  CdiWriter writer(root_);
  absl::StatusOr<std::vector<std::string>> claims = writer.ListClaims();
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_THAT(*claims, IsEmpty());
}

TEST_F(CdiTest, ReadReturnsWhatWasWritten) {
  CdiWriter writer(root_);
  CdiClaimSpec spec = MigMpsSpec();
  spec.annotations = {{"tessera.dev/claim", "default/train"}, {"tessera.dev/share", "mps"}};
  spec.devices[0].edits.device_nodes[0].host_path = "/host/dev/nvidia0";
  spec.devices[0].edits.device_nodes[0].permissions = "rw";
  spec.devices.push_back(CdiDevice{.name = "gpu-1", .edits = {.env = {"A=", "B=x=y"}}});
  spec.common.mounts = {
      CdiMount{.host_path = "/usr/lib/libcuda.so.1", .container_path = "/usr/lib/libcuda.so.1"}};
  ASSERT_TRUE(writer.Write(kDigitUid, spec).ok());

  absl::StatusOr<CdiClaimSpec> read = writer.Read(kDigitUid);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, spec);
}

TEST_F(CdiTest, ReadOfAMissingSpecIsNotFound) {
  CdiWriter writer(root_);
  EXPECT_TRUE(absl::IsNotFound(writer.Read(kUid).status()));
}

TEST_F(CdiTest, ReadOfACorruptFileIsDataLossNamingIt) {
  CdiWriter writer(root_);
  fs::create_directories(root_);
  std::ofstream(writer.SpecPath(kUid)) << R"({"cdiVersion": "0.3.0", "kind": )";
  absl::StatusOr<CdiClaimSpec> read = writer.Read(kUid);
  EXPECT_TRUE(absl::IsDataLoss(read.status())) << read.status();
  EXPECT_THAT(std::string(read.status().message()), HasSubstr(writer.SpecPath(kUid)));
}

// Well-formed JSON that tessera cannot have written is damage too.
TEST_F(CdiTest, ReadRejectsWhatTesseraDoesNotWrite) {
  CdiWriter writer(root_);
  fs::create_directories(root_);
  const std::string device =
      std::string(R"({"name": ")") + kUid +
      R"(-gpu-0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"cdiVersion": "0.3.0", "kind": "other.com/claim", "devices": [)" + device + "]}",
       "kind"},
      {R"({"cdiVersion": "0.3.0", "kind": "k8s.gpu.tessera.dev/claim", "hooks": [], "devices": [)" +
           device + "]}",
       "hooks"},
      {R"({"cdiVersion": "0.3.0", "kind": "k8s.gpu.tessera.dev/claim", "devices": [{"name": "x-gpu-0", "containerEdits": {"env": ["A=1"]}}]})",
       "x-gpu-0"},
      {R"({"cdiVersion": "0.3.0", "kind": "k8s.gpu.tessera.dev/claim", "annotations": {"a": "b"}, "devices": [)" +
           device + "]}",
       "0.6.0"},
      {R"({"cdiVersion": "0.3.0", "kind": "k8s.gpu.tessera.dev/claim", "devices": []})", "devices"},
  };
  for (const auto& [text, mentions] : cases) {
    std::ofstream(writer.SpecPath(kUid)) << text;
    absl::StatusOr<CdiClaimSpec> read = writer.Read(kUid);
    EXPECT_TRUE(absl::IsDataLoss(read.status())) << text << " -> " << read.status();
    EXPECT_THAT(std::string(read.status().message()), HasSubstr(mentions)) << text;
  }
}

TEST_F(CdiTest, SweepRemovesExactlyTheClaimsNotKept) {
  CdiWriter writer(root_);
  for (const char* uid : {"a1", "b2", "c3"}) ASSERT_TRUE(writer.Write(uid, OneGpuSpec()).ok());
  Touch("nvidia.yaml");

  absl::StatusOr<std::vector<std::string>> removed = writer.Sweep({"b2", "z9"});
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, ElementsAre("a1", "c3"));
  EXPECT_THAT(FilesInRoot(), ElementsAre("k8s.gpu.tessera.dev-claim_b2.json", "nvidia.yaml"));
}

TEST_F(CdiTest, SweepRemovesOnlyStaleTemporaryFiles) {
  CdiWriter writer(root_);
  const std::string stale = "k8s.gpu.tessera.dev-claim_a1.json.tmp.4242";
  const std::string fresh = "k8s.gpu.tessera.dev-claim_b2.json.tmp.4343";
  Touch(stale);
  Touch(fresh);
  fs::last_write_time(fs::path(root_) / stale,
                      fs::file_time_type::clock::now() - std::chrono::minutes(2));

  absl::StatusOr<std::vector<std::string>> removed = writer.Sweep({});
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, IsEmpty());  // temporary files are no claims
  EXPECT_THAT(FilesInRoot(), ElementsAre(fresh));
}

TEST_F(CdiTest, SweepOfAMissingDirectoryRemovesNothing) {
  CdiWriter writer(root_);
  absl::StatusOr<std::vector<std::string>> removed = writer.Sweep({});
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, IsEmpty());
}

// Each rejected spec: the error names the field and the bad value, and nothing is written.
TEST_F(CdiTest, RejectsSpecsACdiLoaderWouldReject) {
  struct Case {
    std::string what;
    CdiClaimSpec spec;
    std::vector<std::string> mentions;
  };
  std::vector<Case> cases;
  cases.push_back({"bad device name", OneGpuSpec("gpu_"), {"devices[0].name", "\"gpu_\""}});
  cases.push_back({"slash in device name", OneGpuSpec("gpu/0"), {"devices[0].name", "gpu/0"}});
  cases.push_back({"empty device name", OneGpuSpec(""), {"devices[0].name"}});
  {
    CdiClaimSpec spec = OneGpuSpec();
    spec.devices[0].edits.env = {"CUDA_VISIBLE_DEVICES"};
    cases.push_back(
        {"env without =", spec, {"devices[0].containerEdits.env[0]", "\"CUDA_VISIBLE_DEVICES\""}});
  }
  {
    CdiClaimSpec spec = OneGpuSpec();
    spec.common.env = {"=1"};
    cases.push_back({"env without a name", spec, {"containerEdits.env[0]", "\"=1\""}});
  }
  cases.push_back({"relative node path", OneGpuSpec(), {"deviceNodes[0].path", "\"dev/nvidia0\""}});
  cases.back().spec.devices[0].edits.device_nodes[0].path = "dev/nvidia0";
  {
    CdiClaimSpec spec = OneGpuSpec();
    spec.common.mounts = {CdiMount{.host_path = "/a", .container_path = "tmp/mps"}};
    cases.push_back(
        {"relative mount path", spec, {"containerEdits.mounts[0].containerPath", "\"tmp/mps\""}});
  }
  {
    CdiClaimSpec spec = OneGpuSpec();
    spec.devices[0].edits.device_nodes[0].host_path = "host/dev/nvidia0";
    cases.push_back({"relative host path", spec, {"deviceNodes[0].hostPath", "host/dev/nvidia0"}});
  }
  {
    CdiClaimSpec spec = OneGpuSpec();
    spec.devices[0].edits.device_nodes[0].major = 195;
    cases.push_back({"major without minor", spec, {"deviceNodes[0]", "major 195"}});
  }
  {
    CdiClaimSpec spec = OneGpuSpec();
    spec.devices[0].edits.device_nodes[0].type = "x";
    cases.push_back({"device type", spec, {"deviceNodes[0].type", "\"x\""}});
  }
  {
    CdiClaimSpec spec = OneGpuSpec();
    spec.devices[0].edits.device_nodes[0].permissions = "rwx";
    cases.push_back({"permissions", spec, {"deviceNodes[0].permissions", "\"rwx\""}});
  }
  cases.push_back({"no devices", CdiClaimSpec{}, {"devices", "at least one"}});
  cases.push_back({"empty device edits",
                   CdiClaimSpec{.devices = {CdiDevice{.name = "gpu-0"}}},
                   {"devices[0].containerEdits", "empty"}});
  {
    CdiClaimSpec spec = OneGpuSpec();
    spec.devices.push_back(spec.devices[0]);
    cases.push_back({"duplicate device", spec, {"devices[1].name", "\"gpu-0\""}});
  }
  {
    CdiClaimSpec spec = OneGpuSpec();
    spec.annotations = {{"tessera.dev/bad key", "x"}};
    cases.push_back({"annotation key", spec, {"annotations", "\"tessera.dev/bad key\""}});
  }

  CdiWriter writer(root_);
  for (const Case& c : cases) {
    const absl::Status s = writer.Write(kUid, c.spec);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.what << ": " << s;
    for (const std::string& m : c.mentions) {
      EXPECT_THAT(std::string(s.message()), HasSubstr(m)) << c.what;
    }
  }
  EXPECT_FALSE(fs::exists(root_));
}

TEST_F(CdiTest, RejectsABadKindOrClaimUid) {
  CdiWriter bad_kind(root_, "tessera");
  absl::Status s = bad_kind.Write(kUid, OneGpuSpec());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("kind: \"tessera\""));
  EXPECT_TRUE(absl::IsInvalidArgument(CdiWriter(root_, "-x.com/claim").Write(kUid, OneGpuSpec())));

  CdiWriter writer(root_);
  for (const char* uid : {"", "../etc", "a/b", "a_b", "a-"}) {
    s = writer.Write(uid, OneGpuSpec());
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << uid << ": " << s;
    EXPECT_TRUE(absl::IsInvalidArgument(writer.Remove(uid))) << uid;
    EXPECT_TRUE(absl::IsInvalidArgument(writer.Read(uid).status())) << uid;
  }
  EXPECT_FALSE(fs::exists(root_));
}

// What DeviceNodes produces for a MIG device is a spec CdiWriter accepts and reads back.
TEST_F(CdiTest, AcceptsTheNodesOfAMigDevice) {
  absl::StatusOr<DeviceNodes> nodes = DeviceNodes::Load((dir_ / "no-such-host").string());
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  absl::StatusOr<std::vector<CdiDeviceNode>> caps = nodes->MigAccess(0, 1, 0);
  ASSERT_TRUE(caps.ok()) << caps.status();
  CdiClaimSpec spec;
  spec.devices.push_back(
      CdiDevice{.name = "gpu-0-mig-1-0", .edits = {.device_nodes = {nodes->Gpu(0)}}});
  spec.devices[0].edits.device_nodes.insert(spec.devices[0].edits.device_nodes.end(), caps->begin(),
                                            caps->end());
  spec.common.device_nodes = nodes->Common();

  CdiWriter writer(root_);
  ASSERT_TRUE(writer.Write(kUid, spec).ok());
  absl::StatusOr<CdiClaimSpec> read = writer.Read(kUid);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, spec);
}

}  // namespace
}  // namespace tessera::plugin
