# Every dependency comes from a Debian 12 package installed by scripts/setup (DESIGN.md §7).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS system)
# OpenSSL is linked statically (Debian's libssl-dev ships libssl.a and libcrypto.a) except in
# sanitizer and fuzz builds: every taskmesh process then skips libcrypto's dynamic symbol
# tables and relocations, and touches only the parts of it that it links. Measured: the
# sidecar's idle RSS 14.0 -> 12.6 MB, the agent's 10.6 -> 9.8 MB (docs/benchmarks.md). Envoy
# links its TLS library statically too. The price: an OpenSSL security update reaches the
# binary when it is rebuilt (`make`), not when the Debian package is upgraded.
if(NOT TASKMESH_SANITIZE AND NOT TASKMESH_FUZZ)
  set(OPENSSL_USE_STATIC_LIBS TRUE)
endif()
find_package(OpenSSL 3 REQUIRED)
find_package(CLI11 REQUIRED)
# spdlog and fmt: their headers; src/base compiles them (spdlog_fmt.cc), no shared library.
find_package(spdlog 1.10 REQUIRED)
find_package(GTest REQUIRED)
find_package(benchmark REQUIRED)
pkg_check_modules(RAFT REQUIRED IMPORTED_TARGET raft)
pkg_check_modules(UV REQUIRED IMPORTED_TARGET libuv)
# taskmesh_raft_libs: libraft, and libuv and liblz4 which it calls. Release builds link their
# static archives (PIC in Debian's libraft-dev, libuv1-dev and liblz4-dev), so that no process
# maps them as shared libraries: a sidecar never runs them.
add_library(taskmesh_raft_libs INTERFACE)
if(NOT TASKMESH_SANITIZE AND NOT TASKMESH_FUZZ)
  find_library(RAFT_STATIC NAMES libraft.a REQUIRED)
  find_library(UV_STATIC NAMES libuv_a.a REQUIRED)
  find_library(LZ4_STATIC NAMES liblz4.a REQUIRED)
  target_include_directories(taskmesh_raft_libs INTERFACE ${RAFT_INCLUDE_DIRS} ${UV_INCLUDE_DIRS})
  target_link_libraries(taskmesh_raft_libs INTERFACE
    ${RAFT_STATIC} ${UV_STATIC} ${LZ4_STATIC} Threads::Threads ${CMAKE_DL_LIBS})
else()
  target_link_libraries(taskmesh_raft_libs INTERFACE PkgConfig::RAFT PkgConfig::UV)
endif()
include(GoogleTest)
# Boost 1.74 asio: header-only use, coroutine support, no deprecated names.
add_compile_definitions(BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW)
