#include "tessera/kube/leader.h"

#include <ctime>

#include "tessera/api/strings.h"
#include "tessera/kube/errors.h"

namespace tessera::kube {
namespace {

using api::Json;

}  // namespace

std::string TimeNow() {
  const std::string micro = MicroTimeNow();
  return micro.substr(0, micro.find('.')) + "Z";
}

std::string MicroTimeNow() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long>(micros));
  return buf;
}

LeaderElector::LeaderElector(Client& client, LeaderElectionConfig config)
    : client_(client), config_(std::move(config)) {}

absl::Status LeaderElector::TryAcquireOrRenew() {
  const auto now = std::chrono::steady_clock::now();
  const std::string now_text = MicroTimeNow();
  const int duration_s = static_cast<int>(std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(config_.lease_duration).count()));
  absl::StatusOr<Json> lease = client_.Get(resources::kLeases, config_.ns, config_.name);
  if (!lease.ok() && !IsNotFoundError(lease.status())) return lease.status();
  if (!lease.ok()) {
    Json fresh = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", config_.name}, {"namespace", config_.ns}}},
                  {"spec",
                   {{"holderIdentity", config_.identity},
                    {"leaseDurationSeconds", duration_s},
                    {"acquireTime", now_text},
                    {"renewTime", now_text},
                    {"leaseTransitions", 0}}}};
    absl::StatusOr<Json> created = client_.Create(resources::kLeases, config_.ns, fresh);
    if (!created.ok()) return created.status();
    observed_version_ = (*created)["metadata"].value("resourceVersion", "");
    observed_holder_ = config_.identity;
    observed_at_ = now;
    return absl::OkStatus();
  }
  const Json spec = lease->value("spec", Json::object());
  const std::string holder = spec.value("holderIdentity", "");
  const std::string version = (*lease)["metadata"].value("resourceVersion", "");
  if (version != observed_version_) {  // the lease changed: its holder is alive as of now
    observed_version_ = version;
    observed_holder_ = holder;
    observed_at_ = now;
  }
  const int held_for_s = spec.value("leaseDurationSeconds", duration_s);
  const bool mine = holder == config_.identity;
  const bool expired = holder.empty() || now - observed_at_ > std::chrono::seconds(held_for_s);
  if (!mine && !expired) {
    return absl::FailedPreconditionError(
        StrCat("lease ", config_.ns, "/", config_.name, " is held by ", holder));
  }
  Json updated = *lease;
  updated["spec"]["holderIdentity"] = config_.identity;
  updated["spec"]["leaseDurationSeconds"] = duration_s;
  updated["spec"]["renewTime"] = now_text;
  if (!mine) {
    updated["spec"]["acquireTime"] = now_text;
    updated["spec"]["leaseTransitions"] = spec.value("leaseTransitions", 0) + 1;
  }
  absl::StatusOr<Json> stored = client_.Update(resources::kLeases, config_.ns, updated);
  if (!stored.ok()) return stored.status();  // 409: someone else wrote first
  observed_version_ = (*stored)["metadata"].value("resourceVersion", "");
  observed_holder_ = config_.identity;
  observed_at_ = now;
  return absl::OkStatus();
}

absl::Status LeaderElector::Release() {
  absl::StatusOr<Json> lease = client_.Get(resources::kLeases, config_.ns, config_.name);
  if (!lease.ok()) return lease.status();
  if ((*lease)["spec"].value("holderIdentity", "") != config_.identity) return absl::OkStatus();
  Json released = *lease;
  released["spec"]["holderIdentity"] = "";
  released["spec"]["leaseDurationSeconds"] = 1;
  released["spec"]["renewTime"] = MicroTimeNow();
  return client_.Update(resources::kLeases, config_.ns, released).status();
}

void LeaderElector::Run(const std::atomic<bool>* stop,
                        const std::function<void()>& on_started_leading,
                        const std::function<void()>& on_stopped_leading) {
  auto last_renew = std::chrono::steady_clock::now();
  while (stop == nullptr || !stop->load()) {
    const absl::Status s = TryAcquireOrRenew();
    const auto now = std::chrono::steady_clock::now();
    if (s.ok()) {
      last_renew = now;
      if (!leader_.exchange(true) && on_started_leading) on_started_leading();
    } else if (leader_.load() && (s.code() == absl::StatusCode::kFailedPrecondition ||
                                  now - last_renew > config_.renew_deadline)) {
      // Another candidate holds the lease, or renewing failed for too long: step down.
      leader_ = false;
      if (on_stopped_leading) on_stopped_leading();
    }
    if (!Client::SleepFor(config_.retry_period, stop)) break;
  }
  if (leader_.exchange(false)) {
    if (config_.release_on_stop) Release().IgnoreError();
    if (on_stopped_leading) on_stopped_leading();
  }
}

}  // namespace tessera::kube
