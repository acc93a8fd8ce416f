#include "base/node_id.h"

#include <cstdio>
#include <random>

#include "base/file.h"

namespace taskmesh {

std::string randomHex(size_t chars) {
  std::random_device rd;
  std::string hex;
  while (hex.size() < chars) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", rd());
    hex += buf;
  }
  hex.resize(chars);
  return hex;
}

std::string randomUuid() {
  std::string hex = randomHex(32);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

Result<std::string> loadOrCreateNodeId(const std::string& dataDir) {
  std::string path = dataDir + "/node-id";
  if (auto existing = readFile(path); existing && existing->size() >= 36)
    return existing->substr(0, 36);
  std::string id = randomUuid();
  if (auto w = writeFileAtomic(path, id); !w) return makeError(w.error());
  return id;
}

}  // namespace taskmesh
