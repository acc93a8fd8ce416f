#include "base/json.h"

#include "base/file.h"

namespace taskmesh {
namespace {

using Json = nlohmann::json;

// The DOM builder nlohmann uses internally, with a nesting limit. sax_parse is a template
// over the SAX type, so hiding start_object/start_array here takes effect.
class BoundedSax : public nlohmann::detail::json_sax_dom_parser<Json> {
 public:
  BoundedSax(Json& result, size_t maxDepth)
      : nlohmann::detail::json_sax_dom_parser<Json>(result, false), maxDepth_(maxDepth) {}
  bool start_object(std::size_t n) {
    if (++depth_ > maxDepth_) return tooDeep();
    return nlohmann::detail::json_sax_dom_parser<Json>::start_object(n);
  }
  bool start_array(std::size_t n) {
    if (++depth_ > maxDepth_) return tooDeep();
    return nlohmann::detail::json_sax_dom_parser<Json>::start_array(n);
  }
  bool end_object() {
    --depth_;
    return nlohmann::detail::json_sax_dom_parser<Json>::end_object();
  }
  bool end_array() {
    --depth_;
    return nlohmann::detail::json_sax_dom_parser<Json>::end_array();
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& ex) {
    error_ = "at byte " + std::to_string(pos) + ": " + ex.what();
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  bool tooDeep() {
    error_ = "nested deeper than " + std::to_string(maxDepth_) + " levels";
    return false;
  }
  size_t maxDepth_;
  size_t depth_ = 0;
  std::string error_;
};

Result<Json> parse(std::string_view bytes, nlohmann::detail::input_format_t format,
                   size_t maxDepth) {
  Json result;
  BoundedSax sax(result, maxDepth);
  bool ok = false;
  try {
    ok = Json::sax_parse(bytes.begin(), bytes.end(), &sax, format, /*strict=*/true);
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kInvalidArgument, e.what());
  }
  if (!ok)
    return makeError(ErrorCode::kInvalidArgument,
                     sax.error().empty() ? "malformed input" : sax.error());
  return result;
}

}  // namespace

Result<Json> parseJsonBounded(std::string_view text, size_t maxDepth) {
  return parse(text, nlohmann::detail::input_format_t::json, maxDepth);
}

Result<Json> parseMsgpackBounded(std::string_view bytes, size_t maxDepth) {
  return parse(bytes, nlohmann::detail::input_format_t::msgpack, maxDepth);
}

Result<nlohmann::json> readJsonFile(const std::string& path) {
  auto text = readFile(path);
  if (!text) return makeError(ErrorCode::kInvalidArgument, path + ": " + text.error().message);
  auto parsed = parseJsonBounded(*text);
  if (!parsed) {
    return makeError(ErrorCode::kInvalidArgument,
                     path + ": invalid JSON: " + parsed.error().message);
  }
  return parsed;
}

}  // namespace taskmesh
