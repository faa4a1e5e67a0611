#ifndef TESSERA_TOOLS_KUBECTL_TESSERA_EXPLAIN_H_
#define TESSERA_TOOLS_KUBECTL_TESSERA_EXPLAIN_H_

// `kubectl tessera explain claim/<name>`: what a ResourceClaim was given (device, partition, GPU,
// node, MIG instance, limits, the pods using it and whether they run), or why it is pending (the
// scheduler's message on its pods, what each request asks for, and how many devices that match it
// are published and look free now, per node).

#include <string>
#include <vector>

#include "layout.h"

namespace tessera::kubectl {

struct ExplainInput {
  Json claim{};
  std::vector<Json> pods{};     // pods of the claim's namespace
  std::vector<Json> classes{};  // DeviceClasses
  std::vector<Json> slices{};   // ResourceSlices of the driver
  std::vector<NodeLayout> layouts{};
  std::string driver{};
};

std::string ExplainClaim(const ExplainInput& in);

// The kind of device a DeviceClass or request selects, read from its CEL selectors: the value
// compared with the `type` attribute ("gpu", "mig", "mps", "timeslice"), and a `profile` or
// `profileClass` it pins. Empty when the expression does not say.
struct SelectorHints {
  std::string type{};
  std::string profile{};
  std::string profile_class{};
};
SelectorHints HintsFromCel(const std::string& expression);

}  // namespace tessera::kubectl

#endif  // TESSERA_TOOLS_KUBECTL_TESSERA_EXPLAIN_H_
