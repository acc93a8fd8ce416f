// Raft log entries and snapshots as the state machine reads them back from disk or from a
// peer: decoding must never crash, and whatever decodes must apply deterministically.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "store/command.h"
#include "store/state_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  taskmesh::store::StateStore a;
  taskmesh::store::StateStore b;
  (void)a.restore(bytes);
  auto command = taskmesh::store::decodeCommand(bytes);
  if (!command.has_value()) return 0;
  auto ra = a.apply(1, *command);
  auto rb = b.apply(1, *command);
  if (ra.value != rb.value || ra.error.has_value() != rb.error.has_value()) __builtin_trap();
  // A snapshot of the result restores.
  taskmesh::store::StateStore c;
  if (!c.restore(b.snapshot()).has_value()) __builtin_trap();
  return 0;
}
