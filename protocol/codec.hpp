// Varlink messages <-> JSON text (one frame each, see frame.hpp), and a reader for call
// parameters that turns every missing, mistyped or unknown field into
// org.varlink.service.InvalidParameter naming that field.
#pragma once

#include "protocol/error.hpp"

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace hbsd::protocol {

struct Call {
    std::string method;  // fully qualified, e.g. "vn.hocbaso.Signer.Sign"
    boost::json::object parameters;
    bool more = false;    // the caller accepts several replies ("continues": true)
    bool oneway = false;  // the caller wants no reply at all
    bool upgrade = false;
};

struct Reply {
    boost::json::object parameters;
    bool continues = false;
    std::optional<std::string> error;  // fully qualified error name
};

// Throws Error::invalid_parameter naming the offending part: "frame" when the text is not a
// JSON object, else the key ("method", "parameters", "more", "oneway", "upgrade").
Call decode_call(std::string_view frame_text);
std::string encode_call(const Call& call);

// Replies are always valid UTF-8 JSON: any string (or key) that is not valid UTF-8 - e.g. a
// parser message that cut a character in half - has each bad sequence replaced by U+FFFD, so a
// strict client can always read what the daemon sends.
std::string encode_reply(const boost::json::object& parameters, bool continues = false);
std::string encode_error(const Error& error);

// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view s) noexcept;
// `s` with every invalid sequence replaced by U+FFFD.
std::string repair_utf8(std::string_view s);
// Throws std::runtime_error when the text is not a well-formed reply.
Reply decode_reply(std::string_view frame_text);
// The hbsd::Error an error reply stands for. A name the contract does not know becomes
// Errc::Internal with the name in the detail.
Error error_from_reply(const Reply& reply);

// "vn.hocbaso.Signer.Sign" -> {"vn.hocbaso.Signer", "Sign"}; interface empty when there is no dot.
std::pair<std::string_view, std::string_view> split_method(std::string_view qualified) noexcept;

// Reads typed call parameters. A null value counts as absent (Varlink's maybe types). Every
// accessor marks its key as known; finish() refuses any key that no accessor asked for, so a
// misspelt optional field is an error rather than silently ignored.
class Params {
  public:
    explicit Params(const boost::json::object& object) : obj_(object) {}

    std::string string(std::string_view key);
    std::optional<std::string> opt_string(std::string_view key);
    std::int64_t integer(std::string_view key);
    std::optional<std::int64_t> opt_integer(std::string_view key);
    bool boolean(std::string_view key);
    const boost::json::array& array(std::string_view key);
    // One of `allowed`, e.g. the enum role: (subject_teacher, homeroom_teacher, ...).
    std::string enumeration(std::string_view key, std::initializer_list<std::string_view> allowed);
    void finish() const;

  private:
    const boost::json::value* find(std::string_view key);
    const boost::json::object& obj_;
    std::set<std::string, std::less<>> seen_;
};

}  // namespace hbsd::protocol
