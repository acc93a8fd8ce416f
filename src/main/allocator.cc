// Tuning of jemalloc, which the release binary links as its malloc (src/main/CMakeLists.txt).
// jemalloc reads this symbol when it initialises, before main; MALLOC_CONF in the environment
// still overrides it. Unused (and harmless) in builds without jemalloc.
//
// - background_thread: purging happens on jemalloc's own thread, not in the request path;
// - dirty_decay_ms 1000 / muzzy_decay_ms 0: freed pages go back to the kernel within about a
//   second (the server's RSS follows its live data after a burst or a snapshot);
// - narenas 2: two arenas on any machine (the server has two busy threads; the agent one), so
//   the agent stays small.
extern "C" {
// NOLINTNEXTLINE: the name and type are jemalloc's.
const char* malloc_conf = "background_thread:true,narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0";
}
