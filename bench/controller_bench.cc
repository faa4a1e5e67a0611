#include "controller_bench.h"

#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "httplib.h"
#include "tessera/api/strings.h"

namespace tessera::bench {

std::map<std::string, double> ScrapeMetrics(int port) {
  httplib::Client http("127.0.0.1", port);
  std::map<std::string, double> out;
  httplib::Result r = http.Get("/metrics");
  if (!r || r->status != 200) return out;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t space = line.rfind(' ');
    const std::string name = line.substr(0, line.find_first_of("{ "));
    const double value = std::atof(line.c_str() + space + 1);
    out[name] += value;
    for (const char* label : {"operation=\"apply\"", "operation=\"delete\"", "result=\"ok\""}) {
      if (line.find(label) == std::string::npos) continue;
      const std::string l(label);
      out[StrCat(name, ":", l.substr(l.find('"') + 1, l.size() - l.find('"') - 2))] += value;
    }
  }
  return out;
}

std::pair<double, double> CpuAndPeakRss(pid_t pid) {
  std::ifstream stat(StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  if (text.rfind(')') == std::string::npos) return {-1, -1};
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x;) f.push_back(x);
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double cpu = f.size() > 12 ? (std::stod(f[11]) + std::stod(f[12])) / ticks : -1;
  std::ifstream status(StrCat("/proc/", pid, "/status"));
  double rss_mib = -1;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) rss_mib = std::atof(line.c_str() + 6) / 1024.0;
  }
  return {cpu, rss_mib};
}

absl::StatusOr<RunningController> StartController(const std::string& binary,
                                                  const std::string& kubeconfig,
                                                  const std::string& log_path,
                                                  const std::vector<std::string>& extra) {
  e2e::ProcessOptions p;
  p.argv = {binary, StrCat("--kubeconfig=", kubeconfig), "--leader-elect=false",
            "--metrics-address=127.0.0.1:0", "--health-address=0"};
  p.argv.insert(p.argv.end(), extra.begin(), extra.end());
  p.stdout_path = log_path;
  absl::StatusOr<std::unique_ptr<e2e::ChildProcess>> proc = e2e::ChildProcess::Start(p);
  if (!proc.ok()) return proc.status();
  absl::StatusOr<std::string> serving =
      (*proc)->WaitForLine("serving /metrics", std::chrono::seconds(30));
  if (!serving.ok()) return serving.status();
  std::smatch m;
  if (!std::regex_search(*serving, m, std::regex(":([0-9]+)\\s*$"))) {
    return absl::InternalError(StrCat("no metrics port in: ", *serving));
  }
  return RunningController{
      .process = std::move(*proc), .metrics_port = std::stoi(m[1]), .log_path = log_path};
}

}  // namespace tessera::bench
