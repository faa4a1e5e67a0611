// Device nodes for GPUs and MIG instances, from a host root that holds proc/devices and
// proc/driver/nvidia-caps/mig-minors (or lacks them).

#include "tessera/plugin/device_nodes.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::plugin {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The real file pads majors to three columns.
constexpr const char* kProcDevices =
    "Character devices:\n"
    "  1 mem\n"
    "195 nvidia\n"
    "234 nvidia-uvm\n"
    "508 nvidia-caps\n"
    "\n"
    "Block devices:\n"
    "  8 sd\n";

CdiDeviceNode CharNode(std::string path, int64_t major, int64_t minor) {
  return CdiDeviceNode{.path = std::move(path), .type = "c", .major = major, .minor = minor};
}

CdiDeviceNode CapNode(int64_t major, int64_t minor) {
  CdiDeviceNode node =
      CharNode("/dev/nvidia-caps/nvidia-cap" + std::to_string(minor), major, minor);
  node.file_mode = 0444;
  return node;
}

class DeviceNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("devnodes-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void WriteHostFile(const std::string& relative, const std::string& content) {
    const fs::path path = root_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << content;
  }
  DeviceNodes Load() {
    absl::StatusOr<DeviceNodes> nodes = DeviceNodes::Load(root_.string());
    EXPECT_TRUE(nodes.ok()) << nodes.status();
    return std::move(nodes).value();
  }

  fs::path root_;
};

TEST_F(DeviceNodesTest, CommonNodesTakeTheUvmMajorFromProcDevices) {
  WriteHostFile("proc/devices", kProcDevices);
  EXPECT_THAT(Load().Common(),
              ElementsAre(CharNode("/dev/nvidiactl", 195, 255), CharNode("/dev/nvidia-uvm", 234, 0),
                          CharNode("/dev/nvidia-uvm-tools", 234, 1)));
}

TEST_F(DeviceNodesTest, ReadsOnlyTheCharacterDevicesSection) {
  WriteHostFile("proc/devices", kProcDevices);
  const DeviceNodes nodes = Load();
  EXPECT_EQ(nodes.CharMajor("mem"), 1);
  EXPECT_EQ(nodes.CharMajor("nvidia-caps"), 508);
  EXPECT_EQ(nodes.CharMajor("sd"), std::nullopt);  // a block device
}

TEST_F(DeviceNodesTest, GpuNodeIsCharacter195WithTheGpuMinor) {
  EXPECT_EQ(Load().Gpu(3), CharNode("/dev/nvidia3", 195, 3));
}

TEST_F(DeviceNodesTest, MigAccessUsesTheMinorsListedByTheDriver) {
  WriteHostFile("proc/devices", kProcDevices);
  // Deliberately not the closed form, to see that the file wins.
  WriteHostFile("proc/driver/nvidia-caps/mig-minors",
                "config 1\nmonitor 2\ngpu1/gi2/access 300\ngpu1/gi2/ci3/access 301\n");
  absl::StatusOr<std::vector<CdiDeviceNode>> caps = Load().MigAccess(1, 2, 3);
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_THAT(*caps, ElementsAre(CapNode(508, 300), CapNode(508, 301)));
}

// The MIG user guide's example: GI 1 with CIs 0, 1, 2 on GPU 0 → nvidia-cap12, 13, 14, 15.
TEST_F(DeviceNodesTest, MigAccessFallsBackToTheClosedForm) {
  WriteHostFile("proc/devices", kProcDevices);
  const DeviceNodes nodes = Load();
  for (int ci = 0; ci <= 2; ++ci) {
    absl::StatusOr<std::vector<CdiDeviceNode>> caps = nodes.MigAccess(0, 1, ci);
    ASSERT_TRUE(caps.ok()) << caps.status();
    EXPECT_THAT(*caps, ElementsAre(CapNode(508, 12), CapNode(508, 13 + ci))) << "ci " << ci;
  }
  // The last capability the driver lists: gpu31/gi14/ci7/access 4322.
  absl::StatusOr<std::vector<CdiDeviceNode>> last = nodes.MigAccess(31, 14, 7);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ((*last)[1].minor, 4322);
}

TEST_F(DeviceNodesTest, WithoutProcDevicesDynamicMajorsAreLeftToTheRuntime) {
  const DeviceNodes nodes = Load();  // empty host root
  EXPECT_THAT(nodes.Common(), ElementsAre(CharNode("/dev/nvidiactl", 195, 255),
                                          CdiDeviceNode{.path = "/dev/nvidia-uvm"},
                                          CdiDeviceNode{.path = "/dev/nvidia-uvm-tools"}));
  absl::StatusOr<std::vector<CdiDeviceNode>> caps = nodes.MigAccess(0, 1, 0);
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_THAT(
      *caps,
      ElementsAre(
          CdiDeviceNode{.path = "/dev/nvidia-caps/nvidia-cap12", .type = "c", .file_mode = 0444},
          CdiDeviceNode{.path = "/dev/nvidia-caps/nvidia-cap13", .type = "c", .file_mode = 0444}));
}

TEST_F(DeviceNodesTest, RejectsIdsOutOfRange) {
  const DeviceNodes nodes = Load();
  for (const auto& [gpu, gi, ci] : std::vector<std::tuple<int, int, int>>{
           {32, 0, 0}, {-1, 0, 0}, {0, 15, 0}, {0, -1, 0}, {0, 0, 8}, {0, 0, -1}}) {
    EXPECT_TRUE(absl::IsInvalidArgument(nodes.MigAccess(gpu, gi, ci).status()))
        << gpu << "/" << gi << "/" << ci;
  }
}

TEST_F(DeviceNodesTest, CapabilityMissingFromMigMinorsIsNotFound) {
  WriteHostFile("proc/driver/nvidia-caps/mig-minors", "gpu0/gi1/access 12\n");
  absl::StatusOr<std::vector<CdiDeviceNode>> caps = Load().MigAccess(0, 1, 0);
  EXPECT_TRUE(absl::IsNotFound(caps.status())) << caps.status();
  EXPECT_THAT(std::string(caps.status().message()), HasSubstr("gpu0/gi1/ci0/access"));
}

TEST_F(DeviceNodesTest, MalformedProcDevicesIsAnErrorNamingTheLine) {
  WriteHostFile("proc/devices", "Character devices:\n195 nvidia\nnvidia-uvm 234\n");
  absl::StatusOr<DeviceNodes> nodes = DeviceNodes::Load(root_.string());
  EXPECT_TRUE(absl::IsInvalidArgument(nodes.status())) << nodes.status();
  EXPECT_THAT(std::string(nodes.status().message()), HasSubstr("proc/devices:3"));
  EXPECT_THAT(std::string(nodes.status().message()), HasSubstr("nvidia-uvm 234"));

  WriteHostFile("proc/devices", "195 nvidia\n");
  EXPECT_TRUE(absl::IsInvalidArgument(DeviceNodes::Load(root_.string()).status()));
}

TEST_F(DeviceNodesTest, MalformedMigMinorsIsAnErrorNamingTheLine) {
  WriteHostFile("proc/driver/nvidia-caps/mig-minors", "config 1\ngpu0/gi0/access three\n");
  absl::StatusOr<DeviceNodes> nodes = DeviceNodes::Load(root_.string());
  EXPECT_TRUE(absl::IsInvalidArgument(nodes.status())) << nodes.status();
  EXPECT_THAT(std::string(nodes.status().message()), HasSubstr("mig-minors:2"));
}

}  // namespace
}  // namespace tessera::plugin
