#include "pipeline/params.h"

#include <cmath>

#include "core/enum_names.h"
#include "core/errors.h"
#include "core/limits.h"

namespace pgkm {

namespace {
constexpr EnumNames<Device, 3> kDeviceNames{
    {{{Device::kCpu, "cpu"}, {Device::kCuda, "cuda"}, {Device::kAuto, "auto"}}}};
}  // namespace

const char* device_name(Device d) {
  return kDeviceNames.name(d);
}

std::optional<Device> parse_device(std::string_view name) {
  return kDeviceNames.parse(name);
}

void validate(const QuantizeParams& p) {
  PGKM_EXPECTS(!p.out.empty() || p.dry_run, "--out", "an output archive path is required");
  PGKM_EXPECTS(p.defaults.kmeans.iterations >= 0, "--iters", p.defaults.kmeans.iterations,
               " is negative");
  PGKM_EXPECTS(p.threads >= 0 && p.threads <= kMaxThreads, "--threads", p.threads,
               " is outside 0..", kMaxThreads, " (0: every core)");
  PGKM_EXPECTS(std::isfinite(p.shard_threshold) && p.shard_threshold >= 0, "--shard-threshold",
               p.shard_threshold, " is not a number >= 0");
  PGKM_EXPECTS(p.comm_timeout.count() > 0, "--comm-timeout", p.comm_timeout.count(),
               " s is not a positive number of seconds");
  PGKM_EXPECTS(std::isfinite(p.importance_exponent) && p.importance_exponent >= 0 &&
                   p.importance_exponent <= 4,
               "--importance-exponent", p.importance_exponent, " is outside 0..4");
  PGKM_EXPECTS(std::isfinite(p.importance_token_weight) && p.importance_token_weight >= 0 &&
                   p.importance_token_weight <= kMaxTokenWeight,
               "--importance-token-weight", p.importance_token_weight, " is outside 0..",
               kMaxTokenWeight);
  PGKM_EXPECTS(p.importance_token_weight == 0 || !p.importance.empty(), "--importance-token-weight",
               "token weights come from the importance file: give --importance FILE too");
}

}  // namespace pgkm
