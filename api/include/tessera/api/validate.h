// Validation of any document tessera reads, dispatched on apiVersion and kind: our opaque
// configs (GpuConfig, MigConfig), our CRDs, and the resource.k8s.io/v1 objects. Used by the
// `--validate` flag of every binary, so an admin can check a file before applying it.
#ifndef TESSERA_API_VALIDATE_H_
#define TESSERA_API_VALIDATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/api/json_decode.h"

namespace tessera::api {

// Decodes `doc` strictly (tessera's own kinds) or leniently (Kubernetes kinds) and returns it
// re-encoded with defaults applied and quantities in canonical form.
absl::StatusOr<Json> ValidateDocument(const Json& doc);

// The "apiVersion/kind" pairs ValidateDocument understands.
std::vector<std::string> ValidatableKinds();

}  // namespace tessera::api

#endif  // TESSERA_API_VALIDATE_H_
