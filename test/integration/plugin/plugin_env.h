#ifndef TESSERA_TEST_INTEGRATION_PLUGIN_PLUGIN_ENV_H_
#define TESSERA_TEST_INTEGRATION_PLUGIN_PLUGIN_ENV_H_

// Building blocks shared by the plugin's integration tests: a short temporary directory (unix
// socket paths are limited to 107 bytes), allocated ResourceClaims, and an in-memory claim reader.

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tessera/api/resource.h"
#include "tessera/plugin/prepare.h"

namespace tessera::testing {

class TempDir {
 public:
  // Under $TESSERA_TEST_TMP if set (e.g. a tmpfs, to take the disk out of a measurement), else
  // /tmp; kept short for socket paths.
  TempDir() {
    const char* base = std::getenv("TESSERA_TEST_TMP");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/tsp-XXXXXX";
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << content;
}

// A fake host /proc with the majors of the NVIDIA character devices.
inline void WriteHostProc(const std::string& host_root) {
  WriteFile(host_root + "/proc/devices",
            "Character devices:\n  1 mem\n195 nvidia\n234 nvidia-uvm\n508 nvidia-caps\n\n"
            "Block devices:\n  8 sd\n");
}

// What a PluginProcess started on `dir` reads: the host /proc, the fake GPUs, the boot ID and the
// kubeconfig (of the API stand-in).
inline void WritePluginFiles(const TempDir& dir, const std::string& gpus_yaml,
                             const std::string& kubeconfig, const std::string& boot_id) {
  WriteHostProc(dir / "host");
  WriteFile(dir / "gpus.yaml", gpus_yaml);
  WriteFile(dir / "boot_id", boot_id + "\n");
  WriteFile(dir / "kubeconfig", kubeconfig);
}

struct Allocation {
  std::string request = "gpu";
  std::string device;
  std::string driver = "gpu.tessera.dev";
  std::optional<std::string> share_id{};
  std::map<std::string, std::string> consumed{};  // capacity -> quantity
};

struct OpaqueConfig {
  std::string source = "FromClaim";
  std::vector<std::string> requests{};
  std::string parameters_json;
  std::string driver = "gpu.tessera.dev";
};

inline api::ResourceClaim AllocatedClaim(const std::string& name, const std::string& uid,
                                         const std::vector<Allocation>& allocations,
                                         const std::vector<OpaqueConfig>& configs = {},
                                         const std::string& pool = "node-a") {
  api::ResourceClaim c;
  c.metadata.name = name;
  c.metadata.namespace_ = "default";
  c.metadata.uid = uid;
  api::AllocationResult alloc;
  for (const Allocation& a : allocations) {
    api::DeviceRequestAllocationResult r;
    r.request = a.request;
    r.driver = a.driver;
    r.pool = pool;
    r.device = a.device;
    r.share_id = a.share_id;
    for (const auto& [k, v] : a.consumed) r.consumed_capacity[k] = *api::Quantity::Parse(v);
    alloc.devices.results.push_back(std::move(r));
  }
  for (const OpaqueConfig& oc : configs) {
    api::DeviceAllocationConfiguration cfg;
    cfg.source = oc.source;
    cfg.requests = oc.requests;
    cfg.opaque = api::OpaqueDeviceConfiguration{.driver = oc.driver,
                                                .parameters = api::Json::parse(oc.parameters_json)};
    alloc.devices.config.push_back(std::move(cfg));
  }
  c.status.allocation = std::move(alloc);
  return c;
}

class MapClaimReader : public plugin::ClaimReader {
 public:
  void Put(const api::ResourceClaim& claim) {
    std::lock_guard<std::mutex> lock(mu_);
    claims_[claim.metadata.namespace_ + "/" + claim.metadata.name] = claim;
  }
  absl::StatusOr<api::ResourceClaim> Get(const std::string& ns, const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = claims_.find(ns + "/" + name);
    if (it == claims_.end()) {
      return absl::NotFoundError("resourceclaims.resource.k8s.io \"" + name + "\" not found");
    }
    ++gets_;
    return it->second;
  }
  int gets() {
    std::lock_guard<std::mutex> lock(mu_);
    return gets_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, api::ResourceClaim> claims_;
  int gets_ = 0;
};

}  // namespace tessera::testing

#endif  // TESSERA_TEST_INTEGRATION_PLUGIN_PLUGIN_ENV_H_
