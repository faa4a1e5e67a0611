// The driver's user-space files found under a fake driver root (real files and real symlinks in a
// temporary directory), and the CDI mounts made of them.

#include "tessera/plugin/driver_files.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <ostream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::plugin {

// Readable failure messages for mount lists.
void PrintTo(const CdiMount& m, std::ostream* os) {
  *os << "{" << m.host_path << " -> " << m.container_path << "}";
}

namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kVersion[] = "550.54.15";

class DriverFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("driver-files-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // The machine's multiarch library directory (usr/lib/x86_64-linux-gnu on x86_64).
  static std::string Lib() { return LibraryDirs().front(); }

  void File(const std::string& relative) {
    const fs::path path = root_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << "contents of " << relative << "\n";
  }
  void Link(const std::string& relative, const std::string& target) {
    const fs::path path = root_ / relative;
    fs::create_directories(path.parent_path());
    fs::create_symlink(target, path);
  }
  // A library as the driver installs it: the versioned file and its soname link.
  void Library(const std::string& dir, const std::string& stem, const std::string& soname) {
    File(dir + "/" + stem + "." + kVersion);
    Link(dir + "/" + soname, stem + "." + kVersion);
  }

  std::string Host(const std::string& resolved) const { return root_.string() + resolved; }
  static CdiMount Mount(std::string host, std::string container) {
    return CdiMount{.host_path = std::move(host),
                    .container_path = std::move(container),
                    .options = {"ro", "nosuid", "nodev", "rbind", "rprivate"}};
  }

  DriverFileSet Discover(std::string host_driver_root = "") {
    absl::StatusOr<DriverFileSet> set = DiscoverDriverFiles(
        {.driver_root = root_.string(), .host_driver_root = std::move(host_driver_root)});
    EXPECT_TRUE(set.ok()) << set.status();
    return set.ok() ? *std::move(set) : DriverFileSet{};
  }

  fs::path root_;
};

TEST_F(DriverFilesTest, MountsEachFileAtItsSonamePathFromItsResolvedSource) {
  const std::string lib = Lib();
  const std::string v = kVersion;
  Library(lib, "libcuda.so", "libcuda.so.1");
  Link(lib + "/libcuda.so", "libcuda.so.1");  // the development link is not mounted
  // An absolute link target is read inside the driver root.
  File(lib + "/libnvidia-ml.so." + v);
  Link(lib + "/libnvidia-ml.so.1", "/" + lib + "/libnvidia-ml.so." + v);
  Library(lib, "libnvidia-ptxjitcompiler.so", "libnvidia-ptxjitcompiler.so.1");
  Library(lib, "libnvidia-nvvm.so", "libnvidia-nvvm.so.4");
  // libcudadebugger.so.1 is missing: optional.
  Library(lib, "libnvidia-allocator.so", "libnvidia-allocator.so.1");
  File(lib + "/libnvidia-gpucomp.so." + v);
  File(lib + "/libnvidia-gpucomp.so.535.0.0");  // another version's leftover
  File("opt/nvidia/nvidia-smi");
  Link("usr/bin/nvidia-smi", "/opt/nvidia/nvidia-smi");
  File("usr/bin/nvidia-cuda-mps-control");
  File("bin/nvidia-cuda-mps-server");  // the second binary directory
  // Merged /usr: lib is a link, the firmware lives under usr/lib.
  Link("lib", "usr/lib");
  File("usr/lib/firmware/nvidia/" + v + "/gsp_tu10x.bin");
  File("usr/lib/firmware/nvidia/" + v + "/gsp_ga10x.bin");
  File("usr/lib/firmware/nvidia/" + v + "/README");
  File("usr/lib/firmware/nvidia/535.0.0/gsp_ga10x.bin");

  const DriverFileSet set = Discover();
  EXPECT_EQ(set.driver_version, v);
  const std::string fw = "/usr/lib/firmware/nvidia/" + v;
  EXPECT_THAT(
      set.mounts,
      ElementsAre(
          Mount(Host("/" + lib + "/libcuda.so." + v), "/" + lib + "/libcuda.so.1"),
          Mount(Host("/" + lib + "/libnvidia-ml.so." + v), "/" + lib + "/libnvidia-ml.so.1"),
          Mount(Host("/" + lib + "/libnvidia-ptxjitcompiler.so." + v),
                "/" + lib + "/libnvidia-ptxjitcompiler.so.1"),
          Mount(Host("/" + lib + "/libnvidia-nvvm.so." + v), "/" + lib + "/libnvidia-nvvm.so.4"),
          Mount(Host("/" + lib + "/libnvidia-allocator.so." + v),
                "/" + lib + "/libnvidia-allocator.so.1"),
          Mount(Host("/" + lib + "/libnvidia-gpucomp.so." + v),
                "/" + lib + "/libnvidia-gpucomp.so." + v),
          Mount(Host("/opt/nvidia/nvidia-smi"), "/usr/bin/nvidia-smi"),
          Mount(Host("/usr/bin/nvidia-cuda-mps-control"), "/usr/bin/nvidia-cuda-mps-control"),
          Mount(Host("/bin/nvidia-cuda-mps-server"), "/bin/nvidia-cuda-mps-server"),
          Mount(Host(fw + "/gsp_ga10x.bin"), "/lib/firmware/nvidia/" + v + "/gsp_ga10x.bin"),
          Mount(Host(fw + "/gsp_tu10x.bin"), "/lib/firmware/nvidia/" + v + "/gsp_tu10x.bin")));
  EXPECT_THAT(set.skipped, IsEmpty());
  EXPECT_THAT(set.warnings, IsEmpty());
}

TEST_F(DriverFilesTest, EmptyDriverRootGivesNoMountsAndNoError) {
  absl::StatusOr<DriverFileSet> set = DiscoverDriverFiles({.driver_root = root_.string()});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->mounts, IsEmpty());
  EXPECT_THAT(set->skipped, IsEmpty());
  EXPECT_EQ(set->driver_version, "");
  ASSERT_EQ(set->warnings.size(), 1u);
  EXPECT_THAT(set->warnings[0], HasSubstr("no libcuda.so.1 under " + root_.string()));
}

TEST_F(DriverFilesTest, HostPathsNameTheHostDriverRoot) {
  Library("usr/lib64", "libcuda.so", "libcuda.so.1");
  File("usr/bin/nvidia-smi");
  const std::string v = kVersion;
  EXPECT_THAT(
      Discover("/run/nvidia/driver/").mounts,
      ElementsAre(Mount("/run/nvidia/driver/usr/lib64/libcuda.so." + v, "/usr/lib64/libcuda.so.1"),
                  Mount("/run/nvidia/driver/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi")));
  // The chart's usual case: the host's own driver, seen by the plugin under /driver-root.
  EXPECT_THAT(Discover("/").mounts,
              ElementsAre(Mount("/usr/lib64/libcuda.so." + v, "/usr/lib64/libcuda.so.1"),
                          Mount("/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi")));
}

TEST_F(DriverFilesTest, DanglingSymlinkIsSkippedWithItsReasonAndTheNextDirectoryServes) {
  const std::string lib = Lib();
  Link(lib + "/libcuda.so.1", "libcuda.so.999.1");  // left behind by an uninstall
  Library("usr/lib64", "libcuda.so", "libcuda.so.1");
  // Absolute: exists on any machine's own /, but not inside the driver root.
  Link("usr/bin/nvidia-debugdump", "/bin/sh");

  const DriverFileSet set = Discover();
  EXPECT_THAT(set.mounts, ElementsAre(Mount(Host(std::string("/usr/lib64/libcuda.so.") + kVersion),
                                            "/usr/lib64/libcuda.so.1")));
  EXPECT_THAT(set.skipped,
              ElementsAre("/" + lib + "/libcuda.so.1: dangling symlink: /" + lib +
                              "/libcuda.so.999.1 does not exist",
                          "/usr/bin/nvidia-debugdump: dangling symlink: /bin/sh does not exist"));
  EXPECT_THAT(set.warnings, IsEmpty());
}

TEST_F(DriverFilesTest, SymlinkLoopAndNonRegularFileAreSkipped) {
  Link("usr/lib64/libcuda.so.1", "libcuda.so.2");
  Link("usr/lib64/libcuda.so.2", "/usr/lib64/libcuda.so.1");
  fs::create_directories(root_ / "usr/bin/nvidia-smi");

  const DriverFileSet set = Discover();
  EXPECT_THAT(set.mounts, IsEmpty());
  ASSERT_EQ(set.skipped.size(), 2u);
  EXPECT_THAT(set.skipped[0], HasSubstr("/usr/lib64/libcuda.so.1: "));
  EXPECT_THAT(set.skipped[0], HasSubstr("more than 40 symbolic links"));
  EXPECT_EQ(set.skipped[1], "/usr/bin/nvidia-smi: /usr/bin/nvidia-smi is not a regular file");
  ASSERT_EQ(set.warnings.size(), 1u);
  EXPECT_THAT(set.warnings[0], HasSubstr("no libcuda.so.1"));
}

TEST_F(DriverFilesTest, MultiarchDirectoryWinsOverLib64) {
  Library(Lib(), "libcuda.so", "libcuda.so.1");
  Library("usr/lib64", "libcuda.so", "libcuda.so.1");
  const DriverFileSet set = Discover();
  ASSERT_EQ(set.mounts.size(), 1u);
  EXPECT_EQ(set.mounts[0].container_path, "/" + Lib() + "/libcuda.so.1");
}

TEST_F(DriverFilesTest, UnknownVersionMountsTheSonamesButNoVersionedFilesOrFirmware) {
  File("usr/lib64/libcuda.so.1");  // a plain file: its name carries no version
  File(std::string("usr/lib64/libnvidia-gpucomp.so.") + kVersion);
  File(std::string("lib/firmware/nvidia/") + kVersion + "/gsp_ga10x.bin");

  const DriverFileSet set = Discover();
  EXPECT_EQ(set.driver_version, "");
  EXPECT_THAT(set.mounts,
              ElementsAre(Mount(Host("/usr/lib64/libcuda.so.1"), "/usr/lib64/libcuda.so.1")));
  ASSERT_EQ(set.warnings.size(), 1u);
  EXPECT_THAT(set.warnings[0], HasSubstr("driver version unknown"));
}

TEST_F(DriverFilesTest, VersionComesFromNvmlWhenLibcudaIsMissing) {
  Library("usr/lib64", "libnvidia-ml.so", "libnvidia-ml.so.1");
  File(std::string("usr/lib64/libnvidia-gpucomp.so.") + kVersion);
  const DriverFileSet set = Discover();
  EXPECT_EQ(set.driver_version, kVersion);
  EXPECT_EQ(set.mounts.size(), 2u);
  ASSERT_EQ(set.warnings.size(), 1u);
  EXPECT_THAT(set.warnings[0], HasSubstr("no libcuda.so.1"));
}

TEST_F(DriverFilesTest, BadDriverRootsAreErrors) {
  EXPECT_EQ(DiscoverDriverFiles({.driver_root = "driver-root"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      DiscoverDriverFiles({.driver_root = root_.string(), .host_driver_root = "run/nvidia/driver"})
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  absl::StatusOr<DriverFileSet> missing =
      DiscoverDriverFiles({.driver_root = (root_ / "absent").string()});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("absent is not a directory"));
}

TEST_F(DriverFilesTest, ResolveStaysInsideTheRoot) {
  File("etc/passwd");
  Link("usr/lib64/up", "../../../../../../etc/passwd");
  Link("usr/lib64/abs", "/etc/passwd");
  Link("usr/lib64/dir", "/etc");
  const std::string root = root_.string();
  EXPECT_EQ(ResolveInRoot(root, "/usr/lib64/up").value_or("error"), "/etc/passwd");
  EXPECT_EQ(ResolveInRoot(root, "/usr/lib64/abs").value_or("error"), "/etc/passwd");
  EXPECT_EQ(ResolveInRoot(root, "/usr/lib64/dir/passwd").value_or("error"), "/etc/passwd");
  EXPECT_EQ(ResolveInRoot(root, "/usr/lib64/./../lib64/abs").value_or("error"), "/etc/passwd");
  EXPECT_EQ(ResolveInRoot(root, "/usr/lib64/absent").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveInRoot(root, "/etc/passwd/x").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(DriverFilesTest, RefreshReplacesTheSetAndKeepsItWhenTheScanFails) {
  DriverFiles files({.driver_root = root_.string()});
  EXPECT_THAT(files.Mounts(), IsEmpty());  // before the first scan
  File("usr/bin/nvidia-smi");
  ASSERT_TRUE(files.Refresh().ok());
  EXPECT_THAT(files.Mounts(),
              ElementsAre(Mount(Host("/usr/bin/nvidia-smi"), "/usr/bin/nvidia-smi")));

  File("usr/bin/nvidia-debugdump");
  absl::StatusOr<std::shared_ptr<const DriverFileSet>> refreshed = files.Refresh();
  ASSERT_TRUE(refreshed.ok()) << refreshed.status();
  EXPECT_EQ((*refreshed)->mounts.size(), 2u);
  EXPECT_EQ(files.Current(), *refreshed);

  fs::remove_all(root_);
  EXPECT_EQ(files.Refresh().status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(files.Mounts().size(), 2u);
}

}  // namespace
}  // namespace tessera::plugin
