#include "tessera/plugin/gpu_backend.h"

#include "absl/strings/cord.h"
#include "tessera/api/strings.h"

namespace tessera::plugin {
namespace {

constexpr char kPayloadUrl[] = "type.tessera.dev/plugin.NvmlError";

absl::StatusCode CanonicalCode(NvmlError code) {
  switch (code) {
    case NvmlError::kInUse:
      return absl::StatusCode::kFailedPrecondition;
    case NvmlError::kInsufficientResources:
      return absl::StatusCode::kResourceExhausted;
    case NvmlError::kNotFound:
      return absl::StatusCode::kNotFound;
    case NvmlError::kNoPermission:
      return absl::StatusCode::kPermissionDenied;
    case NvmlError::kGpuIsLost:
    case NvmlError::kDriverNotLoaded:
      return absl::StatusCode::kUnavailable;
    case NvmlError::kNotSupported:
    case NvmlError::kFunctionNotFound:
      return absl::StatusCode::kUnimplemented;
    case NvmlError::kInvalidArgument:
      return absl::StatusCode::kInvalidArgument;
    case NvmlError::kTimeout:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

std::string_view NvmlErrorName(NvmlError code) {
  switch (code) {
    case NvmlError::kUninitialized:
      return "NVML_ERROR_UNINITIALIZED";
    case NvmlError::kInvalidArgument:
      return "NVML_ERROR_INVALID_ARGUMENT";
    case NvmlError::kNotSupported:
      return "NVML_ERROR_NOT_SUPPORTED";
    case NvmlError::kNoPermission:
      return "NVML_ERROR_NO_PERMISSION";
    case NvmlError::kNotFound:
      return "NVML_ERROR_NOT_FOUND";
    case NvmlError::kInsufficientSize:
      return "NVML_ERROR_INSUFFICIENT_SIZE";
    case NvmlError::kDriverNotLoaded:
      return "NVML_ERROR_DRIVER_NOT_LOADED";
    case NvmlError::kTimeout:
      return "NVML_ERROR_TIMEOUT";
    case NvmlError::kFunctionNotFound:
      return "NVML_ERROR_FUNCTION_NOT_FOUND";
    case NvmlError::kGpuIsLost:
      return "NVML_ERROR_GPU_IS_LOST";
    case NvmlError::kInUse:
      return "NVML_ERROR_IN_USE";
    case NvmlError::kInsufficientResources:
      return "NVML_ERROR_INSUFFICIENT_RESOURCES";
    case NvmlError::kUnknown:
      return "NVML_ERROR_UNKNOWN";
  }
  return "NVML_ERROR_UNKNOWN";
}

absl::Status NvmlStatus(NvmlError code, std::string_view call, std::string_view detail) {
  absl::Status s(CanonicalCode(code),
                 StrCat(call, ": ", NvmlErrorName(code), " (", static_cast<int>(code), ")",
                        detail.empty() ? "" : ": ", detail));
  s.SetPayload(kPayloadUrl, absl::Cord(std::to_string(static_cast<int>(code))));
  return s;
}

std::optional<NvmlError> NvmlErrorOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kPayloadUrl);
  if (!payload) return std::nullopt;
  return static_cast<NvmlError>(std::stoi(std::string(*payload)));
}

}  // namespace tessera::plugin
