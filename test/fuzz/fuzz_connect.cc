// What the Connect code reads from outside: the proxy snapshot an agent serves (the proxy
// decodes it), SPIFFE URIs from peers' certificates and CSRs, and PEM bundles. Decoding must
// never crash, and a snapshot that decodes must survive its own encoding unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/json.h"
#include "connect/proxy_config.h"
#include "connect/spiffe.h"
#include "connect/verify.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)taskmesh::connect::parseServiceUri(bytes);
  (void)taskmesh::connect::parseCertificates(bytes);
  auto parsed = taskmesh::parseJsonBounded(bytes);
  if (!parsed.has_value()) return 0;
  auto snapshot = taskmesh::connect::proxySnapshotFromJson(*parsed);
  if (!snapshot.has_value()) return 0;
  auto again = taskmesh::connect::proxySnapshotFromJson(taskmesh::connect::toJson(*snapshot));
  if (!again.has_value()) __builtin_trap();
  if (taskmesh::connect::toJson(*again) != taskmesh::connect::toJson(*snapshot)) __builtin_trap();
  return 0;
}
