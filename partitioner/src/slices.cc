#include "tessera/partitioner/slices.h"

#include <algorithm>
#include <map>
#include <set>

#include "tessera/api/strings.h"
#include "tessera/partitioner/device_name.h"

namespace tessera::partitioner {
namespace {

using api::Device;
using api::ResourceSliceSpec;

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63.
bool IsDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63 || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-') return false;
  }
  return true;
}

bool IsDnsSubdomain(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  std::size_t begin = 0;
  while (true) {
    const std::size_t dot = s.find('.', begin);
    const std::string_view label = s.substr(begin, dot == s.npos ? s.npos : dot - begin);
    if (!IsDnsLabel(label)) return false;
    if (dot == s.npos) return true;
    begin = dot + 1;
  }
}

bool IsCIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// A QualifiedName: "<identifier>" or "<DNS subdomain ≤ 63>/<identifier>".
bool IsQualifiedName(std::string_view s) {
  const std::size_t slash = s.find('/');
  if (slash == s.npos) return IsCIdentifier(s);
  return IsDnsSubdomain(s.substr(0, slash), 63) && IsCIdentifier(s.substr(slash + 1));
}

// Semantic version 2.0: MAJOR.MINOR.PATCH, numbers without leading zeros, optional -pre / +build.
bool IsSemver(std::string_view s) {
  if (s.size() > 64) return false;
  const std::size_t extra = s.find_first_of("-+");
  const std::string_view core = s.substr(0, extra);
  int parts = 0;
  std::size_t begin = 0;
  while (true) {
    const std::size_t dot = core.find('.', begin);
    const std::string_view n = core.substr(begin, dot == core.npos ? core.npos : dot - begin);
    if (n.empty() || (n.size() > 1 && n[0] == '0')) return false;
    for (char c : n) {
      if (c < '0' || c > '9') return false;
    }
    ++parts;
    if (dot == core.npos) break;
    begin = dot + 1;
  }
  return parts == 3;
}

bool HasCounters(const Device& d) { return !d.consumes_counters.empty(); }

ResourceSliceSpec NewSlice(const PoolIdentity& pool) {
  ResourceSliceSpec s;
  s.driver = pool.driver;
  s.pool.name = pool.pool;
  s.pool.generation = pool.generation;
  s.node_name = pool.node_name;
  return s;
}

std::size_t CountersIn(const api::CounterSet& set) { return set.counters.size(); }

std::size_t ConsumedCounters(const Device& d) {
  std::size_t n = 0;
  for (const auto& c : d.consumes_counters) n += c.counters.size();
  return n;
}

// The group of a device: its MIG profile (or none) and share kind, with fixed share slots
// together; names that are not ours form one group.
std::string DeviceGroup(std::string_view name) {
  absl::StatusOr<DeviceName> n = DeviceName::Parse(name);
  if (!n.ok()) return "other";
  std::string key = n->mig ? n->mig->profile_token : "gpu";
  if (n->share) key += *n->share == ShareKind::kMps ? "/mps" : "/ts";
  if (n->slot >= 0) key += "/slot";
  return key;
}

}  // namespace

SliceLimits SliceLimits::ForFeatures(const ApiFeatures& features) {
  SliceLimits l;
  l.counters_in_own_slice = features.counters_in_own_slice;
  if (!features.counters_in_own_slice) {  // 1.34
    l.max_devices_with_counters = 128;
    l.max_consumptions_per_device = 32;
  }
  return l;
}

absl::StatusOr<std::vector<ResourceSliceSpec>> SplitIntoSlices(const NodeDevices& node,
                                                               const PoolIdentity& pool,
                                                               const SliceLimits& limits) {
  std::vector<ResourceSliceSpec> slices;
  if (limits.counters_in_own_slice) {
    // Devices of one group stay in one slice (see the header), groups in their order of first
    // appearance and devices within a group in priority order.
    std::vector<std::string> group_order;
    std::map<std::string, std::vector<const Device*>> groups;
    for (const auto& dp : node.devices) {
      const std::string key = DeviceGroup(dp->name);
      auto [it, added] = groups.try_emplace(key);
      if (added) group_order.push_back(key);
      it->second.push_back(dp.get());
    }
    ResourceSliceSpec current = NewSlice(pool);
    bool with_counters = false;
    auto flush = [&] {
      if (!current.devices.empty()) slices.push_back(std::move(current));
      current = NewSlice(pool);
      with_counters = false;
    };
    for (const std::string& key : group_order) {
      const std::vector<const Device*>& group = groups[key];
      const bool group_counters =
          std::any_of(group.begin(), group.end(), [](const Device* d) { return HasCounters(*d); });
      const bool c = with_counters || group_counters;
      const std::size_t limit =
          static_cast<std::size_t>(c ? limits.max_devices_with_counters : limits.max_devices);
      if (current.devices.size() + group.size() > limit) flush();
      for (const Device* d : group) {
        const int device_limit = (with_counters || HasCounters(*d))
                                     ? limits.max_devices_with_counters
                                     : limits.max_devices;
        if (static_cast<int>(current.devices.size()) >= device_limit) flush();  // a huge group
        with_counters = with_counters || HasCounters(*d);
        current.devices.push_back(*d);
      }
    }
    if (!current.devices.empty()) slices.push_back(std::move(current));
    for (std::size_t i = 0; i < node.counter_sets.size(); i += limits.max_counter_sets_per_slice) {
      ResourceSliceSpec s = NewSlice(pool);
      for (std::size_t k = i;
           k < node.counter_sets.size() && k < i + limits.max_counter_sets_per_slice; ++k) {
        s.shared_counters.push_back(*node.counter_sets[k]);
      }
      slices.push_back(std::move(s));
    }
  } else {
    // Group each counter set with the devices consuming it; devices without counters go on in
    // order in slices of their own.
    std::map<std::string, std::vector<const Device*>> by_set;
    std::vector<const Device*> plain;
    for (const auto& dp : node.devices) {
      const Device& d = *dp;
      if (d.consumes_counters.empty()) {
        plain.push_back(&d);
        continue;
      }
      std::set<std::string> sets;
      for (const auto& c : d.consumes_counters) sets.insert(c.counter_set);
      if (sets.size() != 1) {
        return absl::InvalidArgumentError(StrCat("device ", d.name,
                                                 " consumes several counter sets, which the 1.34 "
                                                 "layout cannot place in one slice"));
      }
      by_set[*sets.begin()].push_back(&d);
    }
    ResourceSliceSpec current = NewSlice(pool);
    std::size_t counters = 0;
    std::size_t consumed = 0;
    for (const auto& sp : node.counter_sets) {
      const api::CounterSet& set = *sp;
      const std::vector<const Device*>& devices = by_set[set.name];
      std::size_t group_consumed = 0;
      for (const Device* d : devices) group_consumed += ConsumedCounters(*d);
      const bool fits =
          counters + CountersIn(set) <= std::size_t(limits.max_counters_per_slice) &&
          current.devices.size() + devices.size() <= std::size_t(limits.max_devices) &&
          consumed + group_consumed <= std::size_t(limits.max_consumed_counters_per_slice);
      if (!fits && (!current.devices.empty() || !current.shared_counters.empty())) {
        slices.push_back(std::move(current));
        current = NewSlice(pool);
        counters = consumed = 0;
      }
      current.shared_counters.push_back(set);
      for (const Device* d : devices) current.devices.push_back(*d);
      counters += CountersIn(set);
      consumed += group_consumed;
    }
    if (!current.devices.empty() || !current.shared_counters.empty())
      slices.push_back(std::move(current));
    for (std::size_t i = 0; i < plain.size(); i += limits.max_devices) {
      ResourceSliceSpec s = NewSlice(pool);
      for (std::size_t k = i; k < plain.size() && k < i + limits.max_devices; ++k)
        s.devices.push_back(*plain[k]);
      slices.push_back(std::move(s));
    }
  }
  if (slices.empty()) slices.push_back(NewSlice(pool));  // an empty pool still says so
  for (ResourceSliceSpec& s : slices)
    s.pool.resource_slice_count = static_cast<std::int64_t>(slices.size());
  if (absl::Status st = ValidatePool(slices, limits); !st.ok()) return st;
  return slices;
}

absl::Status ValidatePool(std::span<const ResourceSliceSpec> slices, const SliceLimits& limits) {
  if (slices.empty()) return absl::InvalidArgumentError("pool: no slices");
  const ResourceSliceSpec& first = slices.front();
  std::set<std::string> device_names;
  std::map<std::string, std::set<std::string>> pool_sets;  // set -> counters (1.35+)
  for (std::size_t i = 0; i < slices.size(); ++i) {
    const ResourceSliceSpec& s = slices[i];
    auto bad = [&](std::string_view what) {
      return absl::InvalidArgumentError(StrCat("pool ", s.pool.name, " slice ", i, ": ", what));
    };
    if (!IsDnsSubdomain(s.driver, 63))
      return bad(
          StrCat("driver \"", s.driver, "\" is not a DNS subdomain of at most 63 characters"));
    if (s.pool.name.empty() || s.pool.name.size() > 253)
      return bad("pool name must have 1 to 253 characters");
    if (s.driver != first.driver || s.pool.name != first.pool.name)
      return bad("driver or pool differs from slice 0");
    if (s.pool.generation != first.pool.generation) return bad("generation differs from slice 0");
    if (s.pool.resource_slice_count != static_cast<std::int64_t>(slices.size())) {
      return bad(StrCat("resourceSliceCount ", s.pool.resource_slice_count, " but the pool has ",
                        slices.size(), " slices"));
    }
    const int selectors = int(s.node_name.has_value()) + int(s.node_selector.has_value()) +
                          int(s.all_nodes.value_or(false)) +
                          int(s.per_device_node_selection.value_or(false));
    if (selectors != 1)
      return bad("exactly one of nodeName, nodeSelector, allNodes, perDeviceNodeSelection");
    if (limits.counters_in_own_slice && !s.devices.empty() && !s.shared_counters.empty()) {
      return bad("only one of sharedCounters or devices is allowed (Kubernetes 1.35+)");
    }
    const bool any_counters = std::any_of(s.devices.begin(), s.devices.end(), HasCounters) ||
                              std::any_of(s.devices.begin(), s.devices.end(),
                                          [](const Device& d) { return !d.taints.empty(); });
    const int device_limit = any_counters ? limits.max_devices_with_counters : limits.max_devices;
    if (static_cast<int>(s.devices.size()) > device_limit) {
      return bad(StrCat(s.devices.size(), " devices; the limit is ", device_limit));
    }
    // Counter sets: names unique (in the pool from 1.35, in the slice before).
    std::map<std::string, std::set<std::string>> slice_sets;
    std::size_t slice_counters = 0;
    if (limits.counters_in_own_slice &&
        static_cast<int>(s.shared_counters.size()) > limits.max_counter_sets_per_slice) {
      return bad(StrCat(s.shared_counters.size(), " counter sets; the limit is ",
                        limits.max_counter_sets_per_slice));
    }
    for (const api::CounterSet& set : s.shared_counters) {
      if (!IsDnsLabel(set.name))
        return bad(StrCat("counter set name \"", set.name, "\" is not a DNS label"));
      if (set.counters.empty()) return bad(StrCat("counter set ", set.name, " has no counters"));
      if (static_cast<int>(set.counters.size()) > limits.max_counters_per_set) {
        return bad(StrCat("counter set ", set.name, " has ", set.counters.size(),
                          " counters; the limit is ", limits.max_counters_per_set));
      }
      slice_counters += set.counters.size();
      std::set<std::string> names;
      for (const auto& [name, counter] : set.counters) {
        if (!IsDnsLabel(name))
          return bad(StrCat("counter \"", name, "\" in ", set.name, " is not a DNS label"));
        if (counter.value.IsNegative())
          return bad(StrCat("counter ", name, " in ", set.name, " is negative"));
        names.insert(name);
      }
      auto& scope = limits.counters_in_own_slice ? pool_sets : slice_sets;
      if (!scope.emplace(set.name, std::move(names)).second) {
        return bad(StrCat("counter set ", set.name, " is defined twice"));
      }
    }
    if (!limits.counters_in_own_slice &&
        static_cast<int>(slice_counters) > limits.max_counters_per_slice) {
      return bad(StrCat(slice_counters, " counters in the slice's sets; the limit is ",
                        limits.max_counters_per_slice));
    }
    std::size_t consumed = 0;
    for (const Device& d : s.devices) {
      auto bad_device = [&](std::string_view what) {
        return bad(StrCat("device ", d.name, ": ", what));
      };
      if (!IsDnsLabel(d.name)) return bad_device("name is not a DNS label");
      if (!device_names.insert(d.name).second) return bad_device("name is not unique in the pool");
      if (static_cast<int>(d.attributes.size() + d.capacity.size()) >
          limits.max_attributes_and_capacities) {
        return bad_device(StrCat(d.attributes.size() + d.capacity.size(),
                                 " attributes and capacities; the limit is ",
                                 limits.max_attributes_and_capacities));
      }
      for (const auto& [key, a] : d.attributes) {
        if (!IsQualifiedName(key))
          return bad_device(StrCat("attribute name \"", key, "\" is not a qualified name"));
        const int set = int(a.int_value.has_value()) + int(a.bool_value.has_value()) +
                        int(a.string_value.has_value()) + int(a.version_value.has_value());
        if (set != 1) return bad_device(StrCat("attribute ", key, " must have exactly one value"));
        if (a.string_value && a.string_value->size() > 64)
          return bad_device(StrCat("attribute ", key, " is longer than 64"));
        if (a.version_value && !IsSemver(*a.version_value)) {
          return bad_device(
              StrCat("attribute ", key, " \"", *a.version_value, "\" is not a semantic version"));
        }
      }
      for (const auto& [key, c] : d.capacity) {
        if (!IsQualifiedName(key))
          return bad_device(StrCat("capacity name \"", key, "\" is not a qualified name"));
        if (d.attributes.count(key) != 0)
          return bad_device(StrCat("\"", key, "\" is both an attribute and a capacity"));
        if (!c.request_policy) continue;
        if (!d.allow_multiple_allocations.value_or(false)) {
          return bad_device(
              StrCat("capacity ", key, " has a requestPolicy without allowMultipleAllocations"));
        }
        const api::CapacityRequestPolicy& p = *c.request_policy;
        if (!p.default_value)
          return bad_device(StrCat("capacity ", key, ": requestPolicy without a default"));
        if (!p.valid_values.empty() && p.valid_range)
          return bad_device(StrCat("capacity ", key, ": both validValues and validRange"));
        if (!p.valid_values.empty()) {
          if (p.valid_values.size() > 10)
            return bad_device(StrCat("capacity ", key, ": more than 10 validValues"));
          bool has_default = false;
          for (std::size_t k = 0; k < p.valid_values.size(); ++k) {
            if (p.valid_values[k] > c.value)
              return bad_device(StrCat("capacity ", key, ": a valid value exceeds the capacity"));
            if (k > 0 && !(p.valid_values[k - 1] < p.valid_values[k])) {
              return bad_device(
                  StrCat("capacity ", key, ": validValues are not strictly ascending"));
            }
            has_default = has_default || p.valid_values[k] == *p.default_value;
          }
          if (!has_default)
            return bad_device(StrCat("capacity ", key, ": the default is not a valid value"));
        }
        if (p.valid_range) {
          const api::CapacityRequestPolicyRange& r = *p.valid_range;
          if (r.min.IsNegative() || r.min > c.value)
            return bad_device(StrCat("capacity ", key, ": validRange.min outside [0, capacity]"));
          if (r.max && (*r.max > c.value || *r.max < r.min)) {
            return bad_device(StrCat("capacity ", key, ": validRange.max outside [min, capacity]"));
          }
          if (*p.default_value < r.min || (r.max && *p.default_value > *r.max)) {
            return bad_device(StrCat("capacity ", key, ": the default is outside validRange"));
          }
          if (r.step) {
            const std::int64_t step = r.step->Value();
            if (step <= 0)
              return bad_device(StrCat("capacity ", key, ": validRange.step is not positive"));
            if (r.min.Value() + step > c.value.Value())
              return bad_device(StrCat("capacity ", key, ": min + step exceeds the capacity"));
            for (const api::Quantity* q : {&r.min, &*p.default_value}) {
              if (q->Value() % step != 0)
                return bad_device(StrCat("capacity ", key, ": ", q->ToString(),
                                         " is not a multiple of the step"));
            }
            if (r.max && r.max->Value() % step != 0)
              return bad_device(StrCat("capacity ", key, ": max is not a multiple of the step"));
          }
        }
      }
      if (static_cast<int>(d.consumes_counters.size()) > limits.max_consumptions_per_device) {
        return bad_device(StrCat(d.consumes_counters.size(),
                                 " consumesCounters entries; the limit is ",
                                 limits.max_consumptions_per_device));
      }
      std::set<std::string> sets_used;
      for (const auto& c : d.consumes_counters) {
        if (!sets_used.insert(c.counter_set).second)
          return bad_device(StrCat("consumes counter set ", c.counter_set, " twice"));
        if (static_cast<int>(c.counters.size()) > limits.max_counters_per_consumption) {
          return bad_device(StrCat("consumes ", c.counters.size(), " counters of ", c.counter_set,
                                   "; the limit is ", limits.max_counters_per_consumption));
        }
        consumed += c.counters.size();
        if (!limits.counters_in_own_slice) {
          auto it = slice_sets.find(c.counter_set);
          if (it == slice_sets.end())
            return bad_device(
                StrCat("consumes counter set ", c.counter_set, ", which is not in its slice"));
          for (const auto& [name, unused] : c.counters) {
            if (it->second.count(name) == 0)
              return bad_device(StrCat("consumes unknown counter ", name, " of ", c.counter_set));
          }
        }
      }
    }
    if (!limits.counters_in_own_slice &&
        static_cast<int>(consumed) > limits.max_consumed_counters_per_slice) {
      return bad(StrCat(consumed, " consumed counters; the limit is ",
                        limits.max_consumed_counters_per_slice));
    }
  }
  // Cross-slice references (1.35+): checked by the scheduler, which drops the whole pool.
  if (limits.counters_in_own_slice) {
    for (std::size_t i = 0; i < slices.size(); ++i) {
      for (const Device& d : slices[i].devices) {
        for (const auto& c : d.consumes_counters) {
          auto it = pool_sets.find(c.counter_set);
          if (it == pool_sets.end()) {
            return absl::InvalidArgumentError(StrCat("pool ", first.pool.name, ": device ", d.name,
                                                     " consumes counter set ", c.counter_set,
                                                     ", which no slice of the pool defines"));
          }
          for (const auto& [name, unused] : c.counters) {
            if (it->second.count(name) == 0) {
              return absl::InvalidArgumentError(StrCat("pool ", first.pool.name, ": device ",
                                                       d.name, " consumes unknown counter ", name,
                                                       " of ", c.counter_set));
            }
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::partitioner
