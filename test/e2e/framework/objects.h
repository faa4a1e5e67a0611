#ifndef TESSERA_TEST_E2E_FRAMEWORK_OBJECTS_H_
#define TESSERA_TEST_E2E_FRAMEWORK_OBJECTS_H_

// Small builders for the Kubernetes objects e2e tests create. They return JSON (which kubectl
// accepts as YAML), so tests can adjust a field before creating the object.

#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace tessera::e2e {

using Json = nlohmann::json;

// A DeviceClass selecting devices of `driver` that also satisfy `cel` (if not empty).
Json DeviceClass(const std::string& name, const std::string& driver, const std::string& cel = "");

// A ResourceClaimTemplate with one request named `request` for exactly one device of
// `device_class`, optionally narrowed by a CEL selector.
Json ClaimTemplate(const std::string& name, const std::string& device_class,
                   const std::string& request = "gpu", const std::string& cel = "");

// A pod with one container using the claim generated from `claim_template`. With `node` set, it
// only fits there (nodeSelector on the hostname label).
Json PodWithClaim(const std::string& name, const std::string& claim_template,
                  const std::string& node = "");

// A ResourceSlice of `driver` for `node`, in pool `node`.
Json Slice(const std::string& name, const std::string& driver, const std::string& node,
           int generation = 1, int slice_count = 1);

// A device with string attributes and, if `counter_set` is set, consuming 1 of each counter.
Json Device(const std::string& name, const std::map<std::string, std::string>& attributes,
            const std::string& counter_set = "", const std::vector<std::string>& counters = {});

// A counter set with `value` of each counter.
Json CounterSet(const std::string& name, const std::vector<std::string>& counters, int value = 1);

}  // namespace tessera::e2e

#endif  // TESSERA_TEST_E2E_FRAMEWORK_OBJECTS_H_
