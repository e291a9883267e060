#include <percore/proto/detail/health_check.h>

#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/health.pb.h>
#include <percore/proto/detail/request_meta_encoder.h>

namespace percore {

std::string encode_health_probe(std::string_view authentication_data) {
  const RequestMetaEncoder meta(kHealthService, kHealthMethod);
  RequestMetaEncoder::CallFields fields{kHealthProbeCorrelationId, 0, 0, 0};
  fields.authentication_data = authentication_data;
  const grpc::health::v1::HealthCheckRequest request;
  std::string frame;
  encode_request_head(meta, fields, request, 1024, frame);
  return frame;
}

}  // namespace percore
