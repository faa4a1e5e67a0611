// MPS control daemons as the plugin sees them: one per device, adopted across plugin restarts,
// replaced when stale, stopped without leaking a process. Real processes of the fake
// nvidia-cuda-mps-control (kubelet-plugin/fake/) in a temporary directory.

#include "tessera/plugin/mps.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tessera/plugin/files.h"

namespace tessera::plugin {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kGpu[] = "GPU-3f2a1b4c-5d6e-7f80-91a2-b3c4d5e6f708";
constexpr char kMig[] = "MIG-9c1e2d3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f";

// A process is gone once /proc has no entry for it or only a zombie waiting for its reaper.
bool Gone(pid_t pid) {
  absl::StatusOr<std::string> stat = ReadWholeFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return true;
  const std::size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] == 'Z';
}

bool WaitGone(pid_t pid) {
  for (int i = 0; i < 500 && !Gone(pid); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Gone(pid);
}

int Mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

// A temporary MPS root that stops every daemon found under it, and removes it, on scope exit,
// whatever the test did: no test leaks a process.
class MpsRoot {
 public:
  MpsRoot() {
    char pattern[] = "/tmp/tessera-mps-XXXXXX";
    const char* made = ::mkdtemp(pattern);
    path_ = made == nullptr ? std::string() : std::string(made);
  }
  MpsRoot(const MpsRoot&) = delete;
  MpsRoot& operator=(const MpsRoot&) = delete;
  ~MpsRoot() {
    if (path_.empty()) return;
    MpsManager manager(Options());
    for (const MpsDaemon& d : manager.List()) {
      EXPECT_TRUE(manager.Stop(d.device_uuid).ok()) << d.device_uuid;
    }
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  MpsOptions Options() const {
    return MpsOptions{.control_binary = TESSERA_FAKE_MPS_CONTROL,
                      .root_dir = path_ + "/mps",
                      .start_timeout = std::chrono::milliseconds(5000),
                      .stop_timeout = std::chrono::milliseconds(5000)};
  }

 private:
  std::string path_;
};

class MpsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(root_.path().empty()) << "mkdtemp failed"; }
  MpsRoot root_;
};

TEST_F(MpsTest, StartCreatesTheDirectoriesAndALiveDaemonForTheDevice) {
  MpsManager manager(root_.Options());
  absl::StatusOr<MpsDaemon> d = manager.Ensure(kGpu);
  ASSERT_TRUE(d.ok()) << d.status();

  EXPECT_EQ(d->id, "gpu-3f2a1b4c-5d6e-7f80-91a2-b3c4d5e6f708");
  EXPECT_EQ(d->device_uuid, kGpu);
  const std::string dir = root_.path() + "/mps/" + d->id;
  EXPECT_EQ(d->pipe_dir, dir + "/pipe");
  EXPECT_EQ(d->log_dir, dir + "/log");
  EXPECT_EQ(d->shm_dir, dir + "/shm");
  EXPECT_EQ(Mode(dir), 0711);
  EXPECT_EQ(Mode(d->pipe_dir), 0755);
  EXPECT_EQ(Mode(d->log_dir), 0755);
  EXPECT_EQ(Mode(d->shm_dir), 01777);
  ASSERT_GT(d->pid, 0);
  EXPECT_FALSE(Gone(d->pid));
  EXPECT_EQ(*ReadWholeFile(d->pipe_dir + "/nvidia-cuda-mps-control.pid"),
            std::to_string(d->pid) + "\n");
  EXPECT_THAT(*ReadWholeFile(d->log_dir + "/control.log"), HasSubstr("startup"));
  absl::StatusOr<std::string> env = ReadWholeFile("/proc/" + std::to_string(d->pid) + "/environ");
  ASSERT_TRUE(env.ok());
  EXPECT_THAT(*env, HasSubstr(std::string("CUDA_VISIBLE_DEVICES=") + kGpu + '\0'));
  EXPECT_THAT(*env, HasSubstr("CUDA_MPS_PIPE_DIRECTORY=" + d->pipe_dir + '\0'));
  EXPECT_THAT(*env, HasSubstr("CUDA_MPS_LOG_DIRECTORY=" + d->log_dir + '\0'));
  EXPECT_TRUE(manager.Running(kGpu));
}

TEST_F(MpsTest, SecondEnsureJoinsTheRunningDaemon) {
  MpsManager manager(root_.Options());
  absl::StatusOr<MpsDaemon> first = manager.Ensure(kMig);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<MpsDaemon> second = manager.Ensure(kMig);
  ASSERT_TRUE(second.ok()) << second.status();

  EXPECT_EQ(second->pid, first->pid);
  EXPECT_EQ(manager.List().size(), 1u);
}

TEST_F(MpsTest, RestartedPluginAdoptsTheRunningDaemon) {
  pid_t pid = 0;
  {
    MpsManager before(root_.Options());
    absl::StatusOr<MpsDaemon> d = before.Ensure(kGpu);
    ASSERT_TRUE(d.ok()) << d.status();
    pid = d->pid;
  }
  MpsManager after(root_.Options());
  EXPECT_TRUE(after.Running(kGpu));
  absl::StatusOr<MpsDaemon> adopted = after.Ensure(kGpu);
  ASSERT_TRUE(adopted.ok()) << adopted.status();

  EXPECT_EQ(adopted->pid, pid);
}

TEST_F(MpsTest, StopEndsTheDaemonAndRemovesItsDirectories) {
  MpsManager manager(root_.Options());
  absl::StatusOr<MpsDaemon> d = manager.Ensure(kGpu);
  ASSERT_TRUE(d.ok()) << d.status();

  ASSERT_TRUE(manager.Stop(kGpu).ok());

  EXPECT_TRUE(WaitGone(d->pid));
  EXPECT_FALSE(fs::exists(root_.path() + "/mps/" + d->id));
  EXPECT_FALSE(manager.Running(kGpu));
  EXPECT_TRUE(manager.List().empty());
}

TEST_F(MpsTest, StopOfAnUnknownDeviceIsOk) {
  MpsManager manager(root_.Options());
  EXPECT_TRUE(manager.Stop(kGpu).ok());
  EXPECT_FALSE(manager.Running(kGpu));
}

TEST_F(MpsTest, CrashedDaemonIsReplacedByAFreshOne) {
  MpsManager manager(root_.Options());
  absl::StatusOr<MpsDaemon> crashed = manager.Ensure(kGpu);
  ASSERT_TRUE(crashed.ok()) << crashed.status();
  ::kill(crashed->pid, SIGKILL);
  ASSERT_TRUE(WaitGone(crashed->pid));
  EXPECT_FALSE(manager.Running(kGpu));

  absl::StatusOr<MpsDaemon> fresh = manager.Ensure(kGpu);
  ASSERT_TRUE(fresh.ok()) << fresh.status();

  EXPECT_NE(fresh->pid, crashed->pid);
  EXPECT_FALSE(Gone(fresh->pid));
  EXPECT_TRUE(manager.Running(kGpu));
}

// A pid file left by a dead daemon may name a pid that now belongs to another process: here the
// test itself, which must be neither adopted nor signalled.
TEST_F(MpsTest, PidFileNamingAnotherProcessIsCleanedAndAFreshDaemonStarted) {
  MpsManager manager(root_.Options());
  const std::string dir = root_.path() + "/mps/" + MpsManager::DaemonId(kGpu);
  fs::create_directories(dir + "/pipe");
  ASSERT_TRUE(WriteFileAtomically(dir + "/device", kGpu).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/pipe/nvidia-cuda-mps-control.pid",
                                  std::to_string(::getpid()) + "\n")
                  .ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/pipe/leftover", "x").ok());
  EXPECT_FALSE(manager.Running(kGpu));

  absl::StatusOr<MpsDaemon> d = manager.Ensure(kGpu);
  ASSERT_TRUE(d.ok()) << d.status();

  EXPECT_NE(d->pid, ::getpid());
  EXPECT_FALSE(Gone(d->pid));
  EXPECT_FALSE(fs::exists(dir + "/pipe/leftover"));
}

TEST_F(MpsTest, StopLeavesAProcessThatIsNotADaemonAlone) {
  MpsManager manager(root_.Options());
  const std::string dir = root_.path() + "/mps/" + MpsManager::DaemonId(kGpu);
  fs::create_directories(dir + "/pipe");
  ASSERT_TRUE(WriteFileAtomically(dir + "/device", kGpu).ok());
  ASSERT_TRUE(
      WriteFileAtomically(dir + "/pipe/nvidia-cuda-mps-control.pid", std::to_string(::getpid()))
          .ok());

  EXPECT_TRUE(manager.Stop(kGpu).ok());  // we are still here to check it

  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(MpsTest, StartFailureNamesTheDeviceTheBinaryAndTheLogTail) {
  MpsOptions options = root_.Options();
  options.extra_env = {"TESSERA_FAKE_MPS_FAIL=start"};
  MpsManager manager(options);

  absl::StatusOr<MpsDaemon> d = manager.Ensure(kGpu);

  ASSERT_FALSE(d.ok());
  const std::string message(d.status().message());
  EXPECT_THAT(message, HasSubstr(kGpu));
  EXPECT_THAT(message, HasSubstr(TESSERA_FAKE_MPS_CONTROL));
  EXPECT_THAT(message, HasSubstr("exited with status 1"));
  EXPECT_THAT(message, HasSubstr("control.log: ["));  // the log's lines start with a time stamp
  EXPECT_THAT(message, HasSubstr("fake start failure"));
  EXPECT_FALSE(manager.Running(kGpu));
  EXPECT_TRUE(manager.List().empty());
}

TEST_F(MpsTest, MissingControlBinaryIsReportedByPath) {
  MpsOptions options = root_.Options();
  options.control_binary = root_.path() + "/no-such-mps-control";
  MpsManager manager(options);

  absl::StatusOr<MpsDaemon> d = manager.Ensure(kGpu);

  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()), HasSubstr(options.control_binary));
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("No such file"));
}

TEST_F(MpsTest, StopSignalsADaemonThatIgnoresQuit) {
  MpsOptions options = root_.Options();
  options.extra_env = {"TESSERA_FAKE_MPS_FAIL=ignore-quit"};
  options.stop_timeout = std::chrono::milliseconds(200);
  MpsManager manager(options);
  absl::StatusOr<MpsDaemon> d = manager.Ensure(kGpu);
  ASSERT_TRUE(d.ok()) << d.status();

  const absl::Status stopped = manager.Stop(kGpu);

  EXPECT_TRUE(stopped.ok()) << stopped;
  EXPECT_TRUE(WaitGone(d->pid));
  EXPECT_FALSE(fs::exists(root_.path() + "/mps/" + d->id));
}

TEST_F(MpsTest, RejectsMalformedUuidsAndOverlongPipeDirectories) {
  MpsManager manager(root_.Options());
  EXPECT_EQ(manager.Ensure("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager.Ensure("GPU-a,GPU-b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager.Ensure("GPU-a b").status().code(), absl::StatusCode::kInvalidArgument);

  MpsOptions deep = root_.Options();
  deep.root_dir += "/" + std::string(60, 'd');
  MpsManager deep_manager(deep);
  EXPECT_EQ(deep_manager.Ensure(kGpu).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(manager.List().empty());
}

TEST(DaemonIdTest, IsADnsLabelDistinctPerDevice) {
  const std::regex label("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
  const std::string gpu_uuid = "3f2a1b4c-5d6e-7f80-91a2-b3c4d5e6f708";
  const std::vector<std::string> uuids = {
      "GPU-" + gpu_uuid,
      "MIG-" + gpu_uuid,  // same hex, other kind
      "MIG-GPU-" + gpu_uuid + "/1/0",
      "MIG-GPU-" + gpu_uuid + "/1/1",
      "MIG-GPU-" + gpu_uuid + "/11/0",
      "MIG-GPU-" + gpu_uuid + "/1/10",
      "GPU-" + gpu_uuid + "-with-a-suffix-long-enough-to-pass-sixty-three-characters",
      "GPU-" + gpu_uuid + "-with-a-suffix-long-enough-to-pass-sixty-three-characterz",
      "--weird--",
      "_",
  };
  std::set<std::string> ids;
  for (const std::string& uuid : uuids) {
    const std::string id = MpsManager::DaemonId(uuid);
    EXPECT_TRUE(std::regex_match(id, label)) << uuid << " -> " << id;
    EXPECT_EQ(MpsManager::DaemonId(uuid), id) << "not stable";
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), uuids.size());
  EXPECT_EQ(MpsManager::DaemonId("GPU-" + gpu_uuid), "gpu-" + gpu_uuid);
  EXPECT_EQ(MpsManager::DaemonId("MIG-" + gpu_uuid), "mig-" + gpu_uuid);
}

TEST_F(MpsTest, EightDevicesStartConcurrently) {
  MpsManager manager(root_.Options());
  std::vector<std::string> uuids;
  for (int i = 0; i < 8; ++i)
    uuids.push_back("MIG-9c1e2d3f-4a5b-6c7d-8e9f-0a1b2c3d4e5" + std::to_string(i));
  std::vector<absl::StatusOr<MpsDaemon>> results(uuids.size(), absl::UnknownError("not run"));
  {
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < uuids.size(); ++i) {
      threads.emplace_back([&, i] { results[i] = manager.Ensure(uuids[i]); });
    }
    for (std::thread& t : threads) t.join();
  }

  std::set<pid_t> pids;
  for (std::size_t i = 0; i < uuids.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << uuids[i] << ": " << results[i].status();
    EXPECT_TRUE(manager.Running(uuids[i]));
    pids.insert(results[i]->pid);
  }
  EXPECT_EQ(pids.size(), uuids.size());
  EXPECT_EQ(manager.List().size(), uuids.size());
}

TEST_F(MpsTest, ListReportsRunningAndStaleDaemons) {
  MpsManager manager(root_.Options());
  absl::StatusOr<MpsDaemon> gpu = manager.Ensure(kGpu);
  absl::StatusOr<MpsDaemon> mig = manager.Ensure(kMig);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  ASSERT_TRUE(mig.ok()) << mig.status();
  ::kill(mig->pid, SIGKILL);
  ASSERT_TRUE(WaitGone(mig->pid));
  fs::create_directories(root_.path() + "/mps/half-started");  // no device file: skipped

  std::vector<MpsDaemon> listed = MpsManager(root_.Options()).List();

  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].device_uuid, kGpu);  // sorted by id: "gpu-…" < "mig-…"
  EXPECT_EQ(listed[0].pid, gpu->pid);
  EXPECT_EQ(listed[0].pipe_dir, gpu->pipe_dir);
  EXPECT_EQ(listed[1].device_uuid, kMig);
  EXPECT_EQ(listed[1].pid, 0);
}

// On a node the daemon needs the claims' shared-memory directory as its /dev/shm.
TEST_F(MpsTest, IsolatedDaemonSeesTheShmDirectoryAsDevShm) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs CAP_SYS_ADMIN";
  MpsOptions options = root_.Options();
  options.isolate_shm = true;
  MpsManager manager(options);
  absl::StatusOr<MpsDaemon> d = manager.Ensure(kGpu);
  if (!d.ok() && d.status().message().find("unshare") != absl::string_view::npos) {
    GTEST_SKIP() << "no mount namespaces here: " << d.status();
  }
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string marker = "tessera-mps-test-" + std::to_string(::getpid());
  ASSERT_TRUE(WriteFileAtomically(d->shm_dir + "/" + marker, "x").ok());

  EXPECT_TRUE(fs::exists("/proc/" + std::to_string(d->pid) + "/root/dev/shm/" + marker));
  EXPECT_FALSE(fs::exists("/dev/shm/" + marker));
}

}  // namespace
}  // namespace tessera::plugin
