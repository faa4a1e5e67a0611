#include "cluster.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "tessera/api/strings.h"

namespace tessera::e2e {
namespace {

using Clock = std::chrono::steady_clock;

Cluster* g_cluster = nullptr;

std::string Getenv(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::vector<std::string> ListLogs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".log") out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Cluster* Cluster::Get() { return g_cluster; }

std::unique_ptr<Cluster> Cluster::Start(const std::vector<std::string>& nodes,
                                        const std::vector<std::string>& up_flags) {
  std::unique_ptr<Cluster> c(new Cluster());
  c->nodes_ = nodes;
  c->testenv_ = Getenv("TESSERA_TESTENV");
  if (c->testenv_.empty()) {
    c->reason_ =
        "testenv not built (Go not found when CMake configured the build; install Go 1.26 "
        "and reconfigure)";
    c->not_built_ = true;
    return c;
  }
  if (access(c->testenv_.c_str(), X_OK) != 0) {
    c->reason_ = StrCat("testenv binary missing: ", c->testenv_, " is not an executable file");
    return c;
  }
  // Short: kubelet-sim roots and plugin sockets live below it (108-byte socket path limit).
  char tmpl[] = "/tmp/te-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    c->reason_ = "mkdtemp /tmp/te-XXXXXX failed";
    return c;
  }
  c->dir_ = tmpl;

  const auto began = Clock::now();
  ProcessOptions process;
  process.argv = {c->testenv_, "up", "--dir", c->dir_, "--nodes", StrJoin(nodes, ",")};
  process.argv.insert(process.argv.end(), up_flags.begin(), up_flags.end());
  process.stdout_path = c->dir_ + "/up.log";
  absl::StatusOr<std::unique_ptr<ChildProcess>> up = ChildProcess::Start(std::move(process));
  if (!up.ok()) {
    c->reason_ = up.status().ToString();
    return c;
  }
  c->up_ = std::move(*up);
  absl::StatusOr<std::string> ready = c->up_->WaitForLine("READY", 180s, "FAILED");
  if (!ready.ok()) {
    c->reason_ = StrCat("testenv up: ", ready.status().message(), "\n", c->LogTails(40));
    return c;
  }
  c->start_seconds_ = std::chrono::duration<double>(Clock::now() - began).count();

  absl::StatusOr<std::string> env = ReadFile(c->dir_ + "/env");
  if (!env.ok()) {
    c->reason_ = env.status().ToString();
    return c;
  }
  std::istringstream lines(*env);
  for (std::string line; std::getline(lines, line);) {
    if (auto eq = line.find('='); eq != std::string::npos) {
      c->env_[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  if (!c->env_.contains("KUBECONFIG") || !c->env_.contains("APISERVER")) {
    c->reason_ = StrCat(c->dir_, "/env lacks KUBECONFIG or APISERVER");
  }
  return c;
}

Cluster::~Cluster() {
  if (up_ != nullptr) {
    up_->Stop(60s);
    std::cerr << "[e2e] control plane stopped; " << TailFile(dir_ + "/up.log", 6);
  }
  if (dir_.empty()) return;
  if (Getenv("TESSERA_E2E_KEEP") == "1") {
    std::cerr << "[e2e] TESSERA_E2E_KEEP=1: kept " << dir_ << "\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string Cluster::EnvValue(const std::string& key) const {
  auto it = env_.find(key);
  return it == env_.end() ? "" : it->second;
}

CommandResult Cluster::Kubectl(const std::vector<std::string>& args, std::string_view input,
                               std::chrono::milliseconds timeout) const {
  std::vector<std::string> argv = {testenv_, "kubectl", "--kubeconfig", kubeconfig()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, input, timeout, dir_);
}

absl::StatusOr<Json> Cluster::GetJson(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"get"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"-o", "json"});
  CommandResult r = Kubectl(argv);
  if (!r.ok()) {
    return absl::NotFoundError(StrCat("kubectl ", StrJoin(argv, " "), ": ", r.Describe()));
  }
  Json parsed = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InternalError(StrCat("kubectl ", StrJoin(argv, " "), ": output is not JSON"));
  }
  return parsed;
}

absl::Status Cluster::Create(std::string_view manifest, std::string_view ns) const {
  std::vector<std::string> args = {"create", "--validate=strict", "-f", "-"};
  if (!ns.empty()) args.insert(args.end(), {"-n", std::string(ns)});
  CommandResult r = Kubectl(args, manifest);
  if (!r.ok()) return absl::InvalidArgumentError(StrCat("kubectl create: ", r.err));
  return absl::OkStatus();
}

absl::Status Cluster::RestartApiServer() {
  if (up_ == nullptr) return absl::FailedPreconditionError("no cluster");
  ::kill(up_->pid(), SIGUSR1);
  absl::StatusOr<std::string> line = up_->WaitForLine("APISERVER RESTARTED", 120s, "FAILED");
  return line.status();
}

std::string Cluster::LogTails(int lines) const {
  std::ostringstream out;
  std::vector<std::string> logs = {dir_ + "/up.log"};
  for (const auto& l : ListLogs(dir_ + "/logs")) logs.push_back(l);
  for (const auto& path : logs) out << "---- " << path << "\n" << TailFile(path, lines);
  return out.str();
}

void ClusterEnvironment::SetUp() {
  auto cluster = Cluster::Start(nodes_, up_flags_);
  if (cluster->available()) {
    std::cerr << "[e2e] control plane " << cluster->EnvValue("K8S_VERSION") << " ready at "
              << cluster->server() << " in " << cluster->start_seconds() << " s (dir "
              << cluster->dir() << ")\n";
  } else {
    std::cerr << "[e2e] no cluster: " << cluster->reason() << "\n";
  }
  g_cluster = cluster.release();
}

void ClusterEnvironment::TearDown() {
  delete g_cluster;
  g_cluster = nullptr;
}

absl::Status Eventually(const std::function<absl::Status()>& condition,
                        std::chrono::milliseconds timeout, std::chrono::milliseconds poll) {
  const auto began = Clock::now();
  absl::Status last;
  while (true) {
    last = condition();
    if (last.ok()) return last;
    if (Clock::now() - began >= timeout) break;
    std::this_thread::sleep_for(poll);
  }
  return absl::Status(last.code(), StrCat("still not true after ", timeout.count() / 1000.0,
                                          " s: ", last.message()));
}

void E2ETest::SetUp() {
  Cluster* c = Cluster::Get();
  if (c == nullptr) GTEST_SKIP() << "no cluster: ClusterEnvironment is not registered";
  if (c->not_built()) GTEST_SKIP() << "skipped: " << c->reason();
  ASSERT_TRUE(c->available()) << "no cluster: " << c->reason();
  ns_ = Unique("e2e");
  CommandResult r = c->Kubectl({"create", "namespace", ns_});
  ASSERT_TRUE(r.ok()) << "create namespace " << ns_ << ": " << r.Describe();
}

std::string E2ETest::Unique(std::string_view prefix) {
  static std::atomic<int> counter{0};
  std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string label;
  for (char ch : test) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      label += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
  }
  label = label.substr(0, 30);
  return StrCat(prefix, "-", label, "-", counter++);
}

absl::StatusOr<Json> E2ETest::Get(std::string_view kind, std::string_view name) {
  return cluster().GetJson({std::string(kind), std::string(name), "-n", ns_});
}

absl::StatusOr<Json> E2ETest::RunningPod(const std::string& pod,
                                         std::chrono::milliseconds timeout) {
  Json out;
  absl::Status s = Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> p = Get("pod", pod);
        if (!p.ok()) return p.status();
        if ((*p)["status"].value("phase", "") != "Running") {
          return absl::UnavailableError(StrCat(pod, " is ", (*p)["status"].dump()));
        }
        out = *p;
        return absl::OkStatus();
      },
      timeout);
  if (!s.ok()) return s;
  return out;
}

void E2ETest::DeleteAtEnd(std::string kind, std::string name) {
  cluster_scoped_.emplace_back(std::move(kind), std::move(name));
}

void E2ETest::AddLogOnFailure(std::string label, std::string path) {
  logs_.emplace_back(std::move(label), std::move(path));
}

void E2ETest::TearDown() {
  Cluster* c = Cluster::Get();
  if (c == nullptr || !c->available() || ns_.empty()) return;
  if (HasFailure()) {
    std::ostringstream dump;
    for (const auto& what : {"pods,resourceclaims", "events"}) {
      CommandResult r = c->Kubectl({"get", what, "-n", ns_, "-o", "yaml"});
      dump << "---- kubectl get " << what << " -n " << ns_ << "\n" << r.out << r.err;
    }
    CommandResult slices = c->Kubectl({"get", "resourceslices", "-o", "yaml"});
    dump << "---- kubectl get resourceslices\n" << slices.out << slices.err;
    for (const auto& [label, path] : logs_) dump << "---- " << label << "\n" << TailFile(path, 40);
    dump << c->LogTails(30);
    std::cerr << dump.str();
  }
  for (const auto& [kind, name] : cluster_scoped_) {
    c->Kubectl({"delete", kind, name, "--ignore-not-found", "--wait=false"});
  }
  // Pods on nodes without a kubelet-sim would keep the namespace terminating; nothing waits.
  c->Kubectl({"delete", "namespace", ns_, "--wait=false"});
}

}  // namespace tessera::e2e
