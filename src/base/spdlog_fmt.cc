// spdlog and fmt, compiled once into the binary from the sources Debian ships in their -dev
// packages (the *-inl.h headers), instead of linking libspdlog.so and libfmt.so.
//
// Why: the binary links libstdc++ statically (src/main/CMakeLists.txt), and libspdlog.so would
// bring the shared libstdc++ back in. Compiled here, in one translation unit, the logging code
// costs one compile, and every other file keeps including only the declarations
// (SPDLOG_COMPILED_LIB, set on taskmesh_spdlog_fmt).
//
// What is instantiated is what log.cc uses: loggers over ANSI-colour stderr sinks made by the
// synchronous factory. A new kind of sink needs its instantiation here; the link says which.
#if !defined(SPDLOG_COMPILED_LIB) || defined(FMT_HEADER_ONLY)
#error "spdlog_fmt.cc is built by taskmesh_spdlog_fmt only (src/base/CMakeLists.txt)"
#endif

#include <fmt/format-inl.h>

#include <spdlog/common-inl.h>
#include <spdlog/details/backtracer-inl.h>
#include <spdlog/details/log_msg-inl.h>
#include <spdlog/details/log_msg_buffer-inl.h>
#include <spdlog/details/os-inl.h>
#include <spdlog/details/periodic_worker-inl.h>
#include <spdlog/details/registry-inl.h>
#include <spdlog/logger-inl.h>
#include <spdlog/pattern_formatter-inl.h>
#include <spdlog/sinks/ansicolor_sink-inl.h>
#include <spdlog/sinks/base_sink-inl.h>
#include <spdlog/sinks/sink-inl.h>
#include <spdlog/sinks/stdout_color_sinks-inl.h>
#include <spdlog/spdlog-inl.h>

#include <locale>
#include <mutex>

// fmt: the templates that format.h declares extern, and those it declares but defines only in
// format-inl.h, instantiated for what formatting char strings needs.
namespace fmt {
FMT_BEGIN_DETAIL_NAMESPACE
template FMT_API auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template FMT_API auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;
template FMT_API locale_ref::locale_ref(const std::locale& loc);
template FMT_API auto locale_ref::get<std::locale>() const -> std::locale;
template FMT_API auto thousands_sep_impl<char>(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl(locale_ref) -> char;
FMT_END_DETAIL_NAMESPACE
}  // namespace fmt

// spdlog: the sink and the factory log.cc makes loggers with.
template class spdlog::sinks::base_sink<std::mutex>;
template class spdlog::sinks::ansicolor_sink<spdlog::details::console_mutex>;
template class spdlog::sinks::ansicolor_stderr_sink<spdlog::details::console_mutex>;
template std::shared_ptr<spdlog::logger> spdlog::stderr_color_mt<spdlog::synchronous_factory>(
    const std::string& logger_name, color_mode mode);
