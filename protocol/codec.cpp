#include "protocol/codec.hpp"

#include <stdexcept>

namespace hbsd::protocol {
namespace json = boost::json;

namespace {

// Bounded nesting: a call is a few levels deep; the default parser depth (32) is kept, but
// strings may be large (documents).
json::value parse_text(std::string_view text, json::error_code& ec) {
    json::parse_options opt;
    opt.max_depth = 32;
    opt.allow_invalid_utf8 = false;
    return json::parse(text, ec, json::storage_ptr(), opt);
}

bool opt_bool(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (!v || v->is_null()) return false;
    if (!v->is_bool()) throw Error::invalid_parameter(key);
    return v->get_bool();
}

// Length of the valid UTF-8 sequence at the start of `s`, 0 if it is not one.
std::size_t utf8_sequence(std::string_view s) noexcept {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char c = b(0);
    if (c < 0x80) return 1;
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;  // overlong
        else if (c == 0xED)
            hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;  // overlong
        else if (c == 0xF4)
            hi = 0x8F;  // above U+10FFFF
    } else {
        return 0;
    }
    if (s.size() < n) return 0;
    if (b(1) < lo || b(1) > hi) return 0;
    for (std::size_t i = 2; i < n; ++i)
        if (b(i) < 0x80 || b(i) > 0xBF) return 0;
    return n;
}

// Repairs, in place, every string and key of `v` that is not valid UTF-8. Nothing is copied
// when everything is valid (the common case).
void repair_value(json::value& v) {
    if (auto* str = v.if_string()) {
        if (!is_valid_utf8(*str)) *str = repair_utf8(*str);
    } else if (auto* arr = v.if_array()) {
        for (auto& e : *arr) repair_value(e);
    } else if (auto* obj = v.if_object()) {
        bool bad_key = false;
        for (auto& kv : *obj) {
            repair_value(kv.value());
            bad_key = bad_key || !is_valid_utf8(kv.key());
        }
        if (bad_key) {
            json::object fixed;
            for (auto& kv : *obj) fixed[repair_utf8(kv.key())] = std::move(kv.value());
            *obj = std::move(fixed);
        }
    }
}

bool needs_repair(const json::value& v) {
    if (const auto* str = v.if_string()) return !is_valid_utf8(*str);
    if (const auto* arr = v.if_array()) {
        for (const auto& e : *arr)
            if (needs_repair(e)) return true;
        return false;
    }
    if (const auto* obj = v.if_object()) {
        for (const auto& kv : *obj)
            if (!is_valid_utf8(kv.key()) || needs_repair(kv.value())) return true;
    }
    return false;
}

std::string serialize_utf8(json::value v) {
    if (needs_repair(v)) repair_value(v);
    return json::serialize(v);
}

}  // namespace

bool is_valid_utf8(std::string_view s) noexcept {
    while (!s.empty()) {
        const auto n = utf8_sequence(s);
        if (n == 0) return false;
        s.remove_prefix(n);
    }
    return true;
}

std::string repair_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    while (!s.empty()) {
        const auto n = utf8_sequence(s);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            s.remove_prefix(1);
        } else {
            out.append(s.substr(0, n));
            s.remove_prefix(n);
        }
    }
    return out;
}

std::pair<std::string_view, std::string_view> split_method(std::string_view q) noexcept {
    const auto dot = q.rfind('.');
    if (dot == std::string_view::npos) return {std::string_view{}, q};
    return {q.substr(0, dot), q.substr(dot + 1)};
}

Call decode_call(std::string_view text) {
    json::error_code ec;
    json::value v = parse_text(text, ec);
    if (ec || !v.is_object()) throw Error::invalid_parameter("frame");
    auto& o = v.get_object();
    Call c;
    const auto* m = o.if_contains("method");
    if (!m || !m->is_string() || m->get_string().empty()) throw Error::invalid_parameter("method");
    c.method = std::string(m->get_string());
    if (const auto* p = o.if_contains("parameters"); p && !p->is_null()) {
        if (!p->is_object()) throw Error::invalid_parameter("parameters");
        c.parameters = std::move(o["parameters"].get_object());
    }
    c.more = opt_bool(o, "more");
    c.oneway = opt_bool(o, "oneway");
    c.upgrade = opt_bool(o, "upgrade");
    return c;
}

std::string encode_call(const Call& call) {
    json::object o{{"method", call.method}};
    if (!call.parameters.empty()) o["parameters"] = call.parameters;
    if (call.more) o["more"] = true;
    if (call.oneway) o["oneway"] = true;
    if (call.upgrade) o["upgrade"] = true;
    return json::serialize(o);
}

std::string encode_reply(const json::object& parameters, bool continues) {
    json::object o{{"parameters", parameters}};
    if (continues) o["continues"] = true;
    return serialize_utf8(std::move(o));
}

std::string encode_error(const Error& error) {
    json::object o{{"error", error_name(error.code())}, {"parameters", error.parameters()}};
    return serialize_utf8(std::move(o));
}

Reply decode_reply(std::string_view text) {
    json::error_code ec;
    json::value v = parse_text(text, ec);
    if (ec || !v.is_object()) throw std::runtime_error("reply is not a JSON object");
    auto& o = v.get_object();
    Reply r;
    if (const auto* p = o.if_contains("parameters"); p && !p->is_null()) {
        if (!p->is_object()) throw std::runtime_error("reply parameters are not an object");
        r.parameters = std::move(o["parameters"].get_object());
    }
    if (const auto* c = o.if_contains("continues"); c && c->is_bool()) r.continues = c->get_bool();
    if (const auto* e = o.if_contains("error"); e && !e->is_null()) {
        if (!e->is_string()) throw std::runtime_error("reply error is not a string");
        r.error = std::string(e->get_string());
    }
    return r;
}

Error error_from_reply(const Reply& reply) {
    const std::string name = reply.error.value_or("");
    if (auto code = error_from_name(name)) return Error(*code, reply.parameters);
    return Error(Errc::Internal, reply.parameters, name);
}

const json::value* Params::find(std::string_view key) {
    seen_.emplace(key);
    const auto* v = obj_.if_contains(key);
    return (v && !v->is_null()) ? v : nullptr;
}

std::optional<std::string> Params::opt_string(std::string_view key) {
    const auto* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) throw Error::invalid_parameter(key);
    return std::string(v->get_string());
}

std::string Params::string(std::string_view key) {
    auto s = opt_string(key);
    if (!s) throw Error::invalid_parameter(key);
    return std::move(*s);
}

std::optional<std::int64_t> Params::opt_integer(std::string_view key) {
    const auto* v = find(key);
    if (!v) return std::nullopt;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
        return static_cast<std::int64_t>(v->get_uint64());
    throw Error::invalid_parameter(key);
}

std::int64_t Params::integer(std::string_view key) {
    auto i = opt_integer(key);
    if (!i) throw Error::invalid_parameter(key);
    return *i;
}

bool Params::boolean(std::string_view key) {
    const auto* v = find(key);
    if (!v || !v->is_bool()) throw Error::invalid_parameter(key);
    return v->get_bool();
}

const json::array& Params::array(std::string_view key) {
    const auto* v = find(key);
    if (!v || !v->is_array()) throw Error::invalid_parameter(key);
    return v->get_array();
}

std::string Params::enumeration(std::string_view key,
                                std::initializer_list<std::string_view> allowed) {
    std::string s = string(key);
    for (auto a : allowed)
        if (a == s) return s;
    throw Error::invalid_parameter(key);
}

void Params::finish() const {
    for (const auto& [k, v] : obj_)
        if (!seen_.contains(std::string_view(k))) throw Error::invalid_parameter(k);
}

}  // namespace hbsd::protocol
