// The JSON format (subprotocol kasagi.v1.json): one JSON object per text frame.
#include <boost/json/basic_parser_impl.hpp>
#include <charconv>
#include "protocol/formats.hpp"

namespace kasagi::protocol::detail {
namespace {

// Appends the JSON text of `v` (an object pointer or a string_view) to `out`. The serializer
// writes into a stack buffer: reading straight into the string's spare capacity is slower,
// because the serializer suspends whenever a number does not fit in what is left.
template <class T>
void append_json(std::string& out, const T& v) {
  boost::json::serializer sr;
  sr.reset(v);
  char buf[4096];
  while (!sr.done()) out += sr.read(buf);
}

// Appends `s` as a JSON string. Room ids, epochs and most paths need no escaping, so they
// are copied as they are.
void append_string(std::string& out, std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\') {
      append_json(out, boost::json::string_view(s));
      return;
    }
  }
  out += '"';
  out += s;
  out += '"';
}

// Appends `v` as JSON. Unlike boost::json::serialize, floats take their shortest exact form
// ("1.5", not "1.5E0") and always keep a '.' or an exponent ("3.0", not "3"), so every
// JSON reader sees a float where a float was written: smaller frames, same values.
void append_value(std::string& out, const boost::json::value& v);

void append_object(std::string& out, const boost::json::object& o) {
  out += '{';
  bool first = true;
  for (const auto& [key, item] : o) {
    if (!first) out += ',';
    first = false;
    append_string(out, key);
    out += ':';
    append_value(out, item);
  }
  out += '}';
}

void append_value(std::string& out, const boost::json::value& v) {
  char buf[32];
  switch (v.kind()) {
    case boost::json::kind::null: out += "null"; return;
    case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; return;
    case boost::json::kind::int64: {
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.get_int64());
      out.append(buf, end);
      return;
    }
    case boost::json::kind::uint64: {
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.get_uint64());
      out.append(buf, end);
      return;
    }
    case boost::json::kind::double_: {
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.get_double());
      const std::string_view text(buf, static_cast<std::size_t>(end - buf));
      out += text;
      if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
      return;
    }
    case boost::json::kind::string: append_string(out, v.get_string()); return;
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out += ',';
        first = false;
        append_value(out, item);
      }
      out += ']';
      return;
    }
    case boost::json::kind::object: append_object(out, v.get_object()); return;
  }
}

// Appends `,"key":` to `out`.
void append_key(std::string& out, std::string_view key) {
  out += ",\"";
  out += key;
  out += "\":";
}

void append_uint(std::string& out, std::string_view key, const std::optional<std::uint64_t>& v) {
  if (!v) return;
  append_key(out, key);
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *v);
  out.append(buf, end);
}

void append_string(std::string& out, std::string_view key, const std::optional<std::string>& v) {
  if (!v) return;
  append_key(out, key);
  append_string(out, *v);
}

// Builds the parsed value like boost::json::parser's handler does, except for floats: the
// parser of Boost 1.81 may get a double's last bit wrong, and floats must survive a round
// trip exactly, so each float's text is read again with std::from_chars (correctly rounded).
struct ValueHandler {
  static constexpr std::size_t max_object_size = boost::json::object::max_size();
  static constexpr std::size_t max_array_size = boost::json::array::max_size();
  static constexpr std::size_t max_key_size = boost::json::string::max_size();
  static constexpr std::size_t max_string_size = boost::json::string::max_size();
  using error_code = boost::system::error_code;
  using string_view = boost::json::string_view;

  boost::json::value_stack st;
  std::string number;  // the start of a number's text split across input buffers

  ValueHandler(unsigned char* scratch, std::size_t size) : st({}, scratch, size) {}

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_object_begin(error_code&) { return true; }
  bool on_object_end(std::size_t n, error_code&) {
    st.push_object(n);
    return true;
  }
  bool on_array_begin(error_code&) { return true; }
  bool on_array_end(std::size_t n, error_code&) {
    st.push_array(n);
    return true;
  }
  bool on_key_part(string_view s, std::size_t, error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_key(string_view s, std::size_t, error_code&) {
    st.push_key(s);
    return true;
  }
  bool on_string_part(string_view s, std::size_t, error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(string_view s, std::size_t, error_code&) {
    st.push_string(s);
    return true;
  }
  bool on_number_part(string_view s, error_code&) {
    number.append(s);
    return true;
  }
  bool on_int64(std::int64_t i, string_view, error_code&) {
    number.clear();
    st.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, string_view, error_code&) {
    number.clear();
    st.push_uint64(u);
    return true;
  }
  bool on_double(double d, string_view s, error_code&) {
    std::string_view text = s;
    if (!number.empty()) text = number.append(s);
    double exact;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), exact);
    // Out of range (1e400): keep the parser's infinity, which normalize then refuses.
    st.push_double(ec == std::errc() && end == text.data() + text.size() ? exact : d);
    number.clear();
    return true;
  }
  bool on_bool(bool b, error_code&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(error_code&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(string_view, error_code&) { return true; }
  bool on_comment(string_view, error_code&) { return true; }
};

}  // namespace

std::string encode_json(const Message& m) {
  std::string out;
  out.reserve(256);
  out += R"({"type":")";
  out += to_string(m.type);
  out += '"';
  if (!m.room_id.empty()) {
    append_key(out, "roomId");
    append_string(out, m.room_id);
  }
  if (m.payload) {
    append_key(out, "payload");
    append_object(out, *m.payload);
  }
  append_uint(out, "version", m.version);
  append_uint(out, "baseVersion", m.base_version);
  append_uint(out, "tick", m.tick);
  append_string(out, "epoch", m.epoch);
  append_uint(out, "requestId", m.request_id);
  append_uint(out, "timestamp", m.timestamp);
  append_string(out, "path", m.path);
  out += '}';
  return out;
}

DecodeResult decode_json(std::string_view bytes, const DecodeLimits& limits) {
  boost::json::parse_options options;
  options.max_depth = frame_depth_limit(limits);
  // The parser's working stack lives here; the value it builds uses the default storage
  // because the payload outlives this call.
  unsigned char scratch[4096];
  boost::json::basic_parser<ValueHandler> parser(options, scratch, sizeof scratch);
  parser.handler().st.reset();
  boost::system::error_code ec;
  std::size_t consumed = parser.write_some(false, bytes.data(), bytes.size(), ec);
  if (!ec && consumed < bytes.size()) ec = boost::json::error::extra_data;
  if (ec == boost::json::error::too_deep)
    return frame_error(nullptr, ErrorCode::bad_message, too_deep_message(limits));
  if (ec)
    return frame_error(nullptr, ErrorCode::bad_message,
                       "frame is not valid JSON: " + ec.message() + " at byte " +
                           std::to_string(consumed));
  return decode_frame(parser.handler().st.release(), limits);
}

}  // namespace kasagi::protocol::detail
