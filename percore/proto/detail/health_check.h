#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace percore {

// The health check percore's client sends to find out whether a server is
// there at all: gRPC's grpc.health.v1.Health.Check (proto/health.proto),
// carried over baidu_std like any call.
inline constexpr std::string_view kHealthService = "grpc.health.v1.Health";
inline constexpr std::string_view kHealthMethod = "Check";

// The correlation id of every probe: slot 0xFFFFFFFF, which no call table
// has (they hold at most 2^20 slots), so a probe's answer can never be taken
// for a call's.
inline constexpr int64_t kHealthProbeCorrelationId = 0xFFFFFFFF;

// One whole request frame of the probe (an empty HealthCheckRequest: the
// server as a whole). With `authentication_data`, it is the client's hello
// that opens an authenticated connection (its first request).
std::string encode_health_probe(std::string_view authentication_data = {});

}  // namespace percore
