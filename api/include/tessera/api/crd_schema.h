// OpenAPI v3 schemas and CustomResourceDefinition manifests for tessera's CRDs. The schemas
// mirror the decoders in crd.h (same fields, same enums and ranges) so that the API server
// rejects at admission what our decoders would reject later; crd_test.cc checks the two agree.
#ifndef TESSERA_API_CRD_SCHEMA_H_
#define TESSERA_API_CRD_SCHEMA_H_

#include <string_view>
#include <vector>

#include "tessera/api/json_decode.h"

namespace tessera::api {

// The openAPIV3Schema of one kind ("GpuInventory" or "GpuPartitionPolicy").
Json CrdSchema(std::string_view kind);

// A complete apiextensions.k8s.io/v1 CustomResourceDefinition for one kind.
Json CrdManifest(std::string_view kind);

// The kinds CrdManifest knows.
std::vector<std::string_view> CrdKinds();

}  // namespace tessera::api

#endif  // TESSERA_API_CRD_SCHEMA_H_
