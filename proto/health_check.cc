#include "proto/health_check.h"

#include "proto/frame_encoder.h"
#include "proto/health.pb.h"
#include "proto/request_meta_encoder.h"

namespace percore {

std::string encode_health_probe() {
  const RequestMetaEncoder meta(kHealthService, kHealthMethod);
  const RequestMetaEncoder::CallFields fields{kHealthProbeCorrelationId, 0, 0, 0};
  const grpc::health::v1::HealthCheckRequest request;
  std::string frame;
  encode_request_head(meta, fields, request, 1024, frame);
  return frame;
}

}  // namespace percore
