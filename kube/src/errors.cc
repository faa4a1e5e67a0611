#include "tessera/kube/errors.h"

#include "tessera/api/strings.h"

namespace tessera::kube {
namespace {

constexpr char kPayloadUrl[] = "type.tessera.dev/kube.ApiStatus";

absl::StatusCode CodeFor(int http, std::string_view reason) {
  switch (http) {
    case 400:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return reason == "AlreadyExists" ? absl::StatusCode::kAlreadyExists
                                       : absl::StatusCode::kAborted;
    case 410:
      return absl::StatusCode::kOutOfRange;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      break;
  }
  if (http >= 500) return absl::StatusCode::kUnavailable;
  return absl::StatusCode::kUnknown;
}

}  // namespace

absl::Status StatusFromApiStatus(const api::Json& status, std::string_view what) {
  ApiStatus s;
  if (status.is_object()) {
    if (status.contains("code") && status["code"].is_number_integer())
      s.code = status["code"].get<int>();
    if (status.contains("reason") && status["reason"].is_string()) s.reason = status["reason"];
    if (status.contains("message") && status["message"].is_string()) s.message = status["message"];
    if (status.contains("details")) s.details = status["details"];
  }
  std::string text =
      StrCat(what, ": ", s.code, " ", s.reason.empty() ? "" : StrCat(s.reason, ": "), s.message);
  if (s.details.is_object() && s.details.contains("causes") && s.details["causes"].is_array()) {
    for (const api::Json& cause : s.details["causes"]) {
      if (!cause.is_object()) continue;
      text += StrCat("; ", cause.value("field", ""), ": ", cause.value("message", ""));
    }
  }
  absl::Status out(CodeFor(s.code, s.reason), text);
  api::Json payload = {
      {"code", s.code}, {"reason", s.reason}, {"message", s.message}, {"details", s.details}};
  out.SetPayload(kPayloadUrl, absl::Cord(payload.dump()));
  return out;
}

absl::Status StatusFromResponse(int http_code, std::string_view body, std::string_view what) {
  api::Json status =
      api::Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!status.is_object() || status.value("kind", "") != "Status") {
    // Not a Status (a proxy's error page, a truncated body): keep the start of the text.
    const std::string excerpt(body.substr(0, 200));
    status = {{"code", http_code}, {"message", excerpt}};
  }
  if (!status.contains("code") || !status["code"].is_number_integer() ||
      status["code"].get<int>() == 0) {
    status["code"] = http_code;
  }
  return StatusFromApiStatus(status, what);
}

std::optional<ApiStatus> ApiStatusOf(const absl::Status& s) {
  const auto payload = s.GetPayload(kPayloadUrl);
  if (!payload) return std::nullopt;
  api::Json j = api::Json::parse(std::string(*payload), nullptr, false);
  if (!j.is_object()) return std::nullopt;
  ApiStatus out;
  out.code = j.value("code", 0);
  out.reason = j.value("reason", "");
  out.message = j.value("message", "");
  out.details = j.contains("details") ? j["details"] : api::Json();
  return out;
}

namespace {
bool HasCode(const absl::Status& s, int code) {
  std::optional<ApiStatus> a = ApiStatusOf(s);
  return a && a->code == code;
}
}  // namespace

bool IsNotFoundError(const absl::Status& s) { return HasCode(s, 404); }
bool IsAlreadyExistsError(const absl::Status& s) {
  return HasCode(s, 409) && s.code() == absl::StatusCode::kAlreadyExists;
}
bool IsConflictError(const absl::Status& s) {
  return HasCode(s, 409) && s.code() == absl::StatusCode::kAborted;
}
bool IsGoneError(const absl::Status& s) { return HasCode(s, 410); }
bool IsInvalidError(const absl::Status& s) { return HasCode(s, 422); }

}  // namespace tessera::kube
