#ifndef TESSERA_KUBE_ERRORS_H_
#define TESSERA_KUBE_ERRORS_H_

// Errors from the API server as absl::Status: the canonical code follows the HTTP status (404
// NotFound, 409 AlreadyExists or Aborted for a conflict, 410 OutOfRange for an expired resource
// version, 422 and 400 InvalidArgument, 401 Unauthenticated, 403 PermissionDenied, 429
// ResourceExhausted, 5xx Unavailable), the message carries the server's reason and message (and
// the field causes of a 422), and the server's Status object rides along as a payload.

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "tessera/api/json_decode.h"

namespace tessera::kube {

struct ApiStatus {
  int code = 0;        // HTTP status
  std::string reason;  // "NotFound", "Conflict", "AlreadyExists", "Expired", "Invalid", ...
  std::string message;
  api::Json details;  // the Status's details (causes, name, kind), or null
};

// The Status for an HTTP response; `what` names the request ("GET /api/v1/nodes/a").
absl::Status StatusFromResponse(int http_code, std::string_view body, std::string_view what);
// The same for a Status object (an ERROR watch event).
absl::Status StatusFromApiStatus(const api::Json& status, std::string_view what);

// The API server's Status carried by `s`, if any.
std::optional<ApiStatus> ApiStatusOf(const absl::Status& s);

bool IsNotFoundError(const absl::Status& s);
bool IsAlreadyExistsError(const absl::Status& s);
bool IsConflictError(
    const absl::Status& s);  // 409 Conflict (stale resourceVersion, failed precondition)
bool IsGoneError(const absl::Status& s);     // 410: the resource version was compacted
bool IsInvalidError(const absl::Status& s);  // 422

}  // namespace tessera::kube

#endif  // TESSERA_KUBE_ERRORS_H_
