// YAML <-> JSON for files people write (configs, policies, manifests). YAML scalars are typed the
// way Kubernetes' YAML decoder types them: unquoted true/false, null/~, integers and floats become
// JSON booleans, null and numbers; quoted scalars always stay strings.
#ifndef TESSERA_API_YAML_H_
#define TESSERA_API_YAML_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/api/json_decode.h"

namespace tessera::api {

// One document. JSON input is accepted too (it is YAML). Errors carry line and column.
absl::StatusOr<Json> ParseYaml(std::string_view text);

// Every document of a multi-document stream ("---" separated); empty documents are skipped.
absl::StatusOr<std::vector<Json>> ParseYamlDocuments(std::string_view text);

// Block-style YAML; strings that YAML would read as another type are quoted.
std::string ToYaml(const Json& value);

}  // namespace tessera::api

#endif  // TESSERA_API_YAML_H_
