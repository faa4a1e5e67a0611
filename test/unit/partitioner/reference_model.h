#ifndef TESSERA_TEST_UNIT_PARTITIONER_REFERENCE_MODEL_H_
#define TESSERA_TEST_UNIT_PARTITIONER_REFERENCE_MODEL_H_

// A brute-force statement of what makes a MIG layout valid, independent of GpuState: every
// instance at one of its profile's placements, pairwise-disjoint memory slices, compute within the
// GPU, per-profile instance limits, at most one +me, and (before R510) no 4g with a 3g.

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tessera/api/strings.h"
#include "tessera/partitioner/catalogue.h"

namespace tessera::partitioner {

using Layout = std::vector<std::pair<int, int>>;  // (profile index, start)

// Empty if `layout` is valid on `m`; otherwise what is wrong.
inline std::string ReferenceViolation(const GpuModel& m, const Layout& layout) {
  unsigned used = 0;
  int compute = 0, media = 0;
  bool four = false, three = false;
  std::map<int, int> count;
  for (const auto& [profile, start] : layout) {
    const GiProfile& p = m.profiles[profile];
    const bool allowed = std::any_of(p.placements.begin(), p.placements.end(),
                                     [&](const Placement& pl) { return pl.start == start; });
    if (!allowed) return StrCat(p.name, " may not start at ", start);
    const unsigned bits = ((1u << p.memory_slices) - 1u) << start;
    if (used & bits) return StrCat(p.name, "@", start, " overlaps");
    used |= bits;
    compute += p.compute_slices;
    media += p.media_extension ? 1 : 0;
    four |= p.size_class == "4g";
    three |= p.size_class == "3g";
    if (++count[profile] > p.max_instances) return StrCat("too many ", p.name);
  }
  if (compute > m.compute_slices) return StrCat("compute ", compute, " > ", m.compute_slices);
  if (media > 1) return "two +me instances";
  if (!m.four_and_three_coexist && four && three) return "4g with 3g before R510";
  return "";
}

}  // namespace tessera::partitioner

#endif  // TESSERA_TEST_UNIT_PARTITIONER_REFERENCE_MODEL_H_
