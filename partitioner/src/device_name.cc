#include "tessera/partitioner/device_name.h"

#include <vector>

#include "tessera/api/strings.h"
#include "text.h"

namespace tessera::partitioner {
namespace {

constexpr std::size_t kMaxLabel = 63;

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// A canonical non-negative decimal: no sign, no leading zero, at most 6 digits.
bool ParseCanonical(std::string_view s, int* out) {
  if (!IsDigits(s) || s.size() > 6 || (s.size() > 1 && s[0] == '0')) return false;
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  *out = v;
  return true;
}

// "p6" -> 6, "s12" -> 12.
bool IsNumbered(std::string_view segment, char prefix, int* out) {
  return segment.size() >= 2 && segment[0] == prefix && ParseCanonical(segment.substr(1), out);
}

std::optional<ShareKind> ShareSegment(std::string_view segment) {
  if (segment == "mps") return ShareKind::kMps;
  if (segment == "ts") return ShareKind::kTimeSlice;
  return std::nullopt;
}

// A profile-token segment must not look like any other part of the grammar.
bool ReservedSegment(std::string_view segment) {
  int unused = 0;
  return segment.empty() || segment == "mig" || ShareSegment(segment).has_value() ||
         IsNumbered(segment, 'p', &unused) || IsNumbered(segment, 's', &unused);
}

}  // namespace

absl::StatusOr<std::string> ProfileToken(std::string_view profile_name) {
  std::string token;
  for (char c : profile_name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == '.') continue;
    if (c == '+') c = '-';
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return absl::InvalidArgumentError(StrCat("MIG profile name \"", profile_name,
                                               "\": character '", std::string(1, c),
                                               "' cannot appear in a device name"));
    }
    token += c;
  }
  for (std::string_view segment : internal::Split(token, '-')) {
    if (ReservedSegment(segment)) {
      return absl::InvalidArgumentError(StrCat("MIG profile name \"", profile_name,
                                               "\" gives the device-name token \"", token,
                                               "\", which would not decode unambiguously"));
    }
  }
  return token;
}

std::string DeviceName::ToString() const {
  std::string out = StrCat("gpu-", gpu);
  if (mig) out += StrCat("-mig-", mig->profile_token, "-p", mig->start);
  if (share) {
    out += *share == ShareKind::kMps ? "-mps" : "-ts";
    if (slot >= 0) out += StrCat("-s", slot);
  }
  return out;
}

absl::StatusOr<DeviceName> DeviceName::Parse(std::string_view name) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("device name \"", name, "\" is not a tessera device: ", why));
  };
  if (name.size() > kMaxLabel) return bad("longer than 63 characters");
  const std::vector<std::string_view> seg = internal::Split(name, '-');
  if (seg.size() < 2 || seg[0] != "gpu") return bad("expected gpu-<index>");
  DeviceName out;
  if (!ParseCanonical(seg[1], &out.gpu)) return bad("GPU index is not a canonical number");
  std::size_t i = 2;
  if (i < seg.size() && seg[i] == "mig") {
    // The profile token runs up to the placement segment "p<start>".
    std::size_t p = i + 1;
    int start = 0;
    while (p < seg.size() && !IsNumbered(seg[p], 'p', &start)) ++p;
    if (p == seg.size()) return bad("MIG device without a p<start> placement segment");
    if (p == i + 1) return bad("MIG device without a profile");
    std::string token;
    for (std::size_t k = i + 1; k < p; ++k) {
      if (ReservedSegment(seg[k])) return bad(StrCat("bad profile segment \"", seg[k], "\""));
      if (!token.empty()) token += '-';
      token += seg[k];
    }
    out.mig = Mig{token, start};
    i = p + 1;
  }
  if (i < seg.size()) {
    out.share = ShareSegment(seg[i]);
    if (!out.share) return bad(StrCat("unexpected segment \"", seg[i], "\""));
    ++i;
    if (i < seg.size()) {
      if (!IsNumbered(seg[i], 's', &out.slot)) {
        return bad(StrCat("expected s<share number>, got \"", seg[i], "\""));
      }
      ++i;
    }
  }
  if (i != seg.size()) return bad(StrCat("unexpected segment \"", seg[i], "\""));
  if (out.ToString() != name) return bad("not in canonical form");
  return out;
}

absl::StatusOr<ResolvedDevice> ResolveDeviceName(std::string_view name, const GpuModel& model) {
  absl::StatusOr<DeviceName> parsed = DeviceName::Parse(name);
  if (!parsed.ok()) return parsed.status();
  ResolvedDevice out{.gpu = parsed->gpu, .share = parsed->share, .slot = parsed->slot};
  if (!parsed->mig) return out;
  for (std::size_t i = 0; i < model.profiles.size(); ++i) {
    absl::StatusOr<std::string> token = ProfileToken(model.profiles[i].name);
    if (!token.ok() || *token != parsed->mig->profile_token) continue;
    for (const Placement& pl : model.profiles[i].placements) {
      if (pl.start == parsed->mig->start) {
        out.profile = static_cast<int>(i);
        out.placement = pl;
        return out;
      }
    }
    return absl::NotFoundError(StrCat("device ", name, ": profile ", model.profiles[i].name,
                                      " has no placement starting at memory slice ",
                                      parsed->mig->start, " on ", model.key));
  }
  return absl::NotFoundError(StrCat("device ", name, ": no MIG profile \"",
                                    parsed->mig->profile_token, "\" on ", model.key));
}

}  // namespace tessera::partitioner
