// Request bodies of the catalog API: never crash, never throw, always a value or an error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto reg = taskmesh::api::decodeRegister(body);
  if (reg.has_value() && reg->service) {
    // Whatever decodes must also encode.
    (void)taskmesh::api::encodeAgentService(*reg->service).dump();
  }
  (void)taskmesh::api::decodeDeregister(body);
  return 0;
}
