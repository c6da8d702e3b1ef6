#include "protocol/codec.hpp"
#include "tests/support/catch.hpp"

#include <string>

using namespace hbsd;
using namespace hbsd::protocol;
namespace json = boost::json;

namespace {

// The parameter an InvalidParameter names, or "" when `f` does not throw one.
template <class F>
std::string invalid_parameter_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        if (e.code() != Errc::InvalidParameter)
            return "<" + std::string(error_name(e.code())) + ">";
        return std::string(e.parameters().at("parameter").as_string());
    }
    return "";
}

}  // namespace

TEST_CASE("codec: a call with every flag") {
    auto c = decode_call(
        R"({"method":"vn.hocbaso.Signer.Sign","parameters":{"a":1},"more":true,"oneway":false})");
    CHECK(c.method == "vn.hocbaso.Signer.Sign");
    CHECK(c.parameters.at("a").as_int64() == 1);
    CHECK(c.more);
    CHECK_FALSE(c.oneway);
    CHECK_FALSE(c.upgrade);
}

TEST_CASE("codec: parameters may be absent or null") {
    CHECK(decode_call(R"({"method":"x.Y"})").parameters.empty());
    CHECK(decode_call(R"({"method":"x.Y","parameters":null})").parameters.empty());
}

TEST_CASE("codec: malformed calls name what is wrong") {
    CHECK(invalid_parameter_of([] { decode_call("{not json"); }) == "frame");
    CHECK(invalid_parameter_of([] { decode_call("[1,2]"); }) == "frame");
    CHECK(invalid_parameter_of([] { decode_call(""); }) == "frame");
    CHECK(invalid_parameter_of([] { decode_call("{\"method\":\"a\xff\"}"); }) == "frame");
    CHECK(invalid_parameter_of([] { decode_call(R"({"parameters":{}})"); }) == "method");
    CHECK(invalid_parameter_of([] { decode_call(R"({"method":7})"); }) == "method");
    CHECK(invalid_parameter_of([] { decode_call(R"({"method":""})"); }) == "method");
    CHECK(invalid_parameter_of([] { decode_call(R"({"method":"a.B","parameters":[1]})"); }) ==
          "parameters");
    CHECK(invalid_parameter_of([] { decode_call(R"({"method":"a.B","more":"yes"})"); }) == "more");
    CHECK(invalid_parameter_of([] { decode_call(R"({"method":"a.B","oneway":1})"); }) == "oneway");
}

TEST_CASE("codec: deeply nested JSON is refused, not recursed into") {
    std::string deep(10000, '[');
    deep = R"({"method":"a.B","parameters":{"x":)" + deep;
    CHECK(invalid_parameter_of([&] { decode_call(deep); }) == "frame");
}

TEST_CASE("codec: call round trip") {
    Call c{"org.varlink.service.GetInfo", {{"k", "v"}}};
    c.more = true;
    auto back = decode_call(encode_call(c));
    CHECK(back.method == c.method);
    CHECK(back.parameters == c.parameters);
    CHECK(back.more);
}

TEST_CASE("codec: replies and errors") {
    auto r = decode_reply(encode_reply({{"x", 1}}, true));
    CHECK(r.continues);
    CHECK_FALSE(r.error);
    CHECK(r.parameters.at("x").as_int64() == 1);

    CHECK(json::parse(encode_reply({})).as_object().at("parameters").as_object().empty());
    CHECK_FALSE(json::parse(encode_reply({})).as_object().contains("continues"));

    auto e = decode_reply(encode_error(Error::busy(200)));
    REQUIRE(e.error);
    CHECK(*e.error == "vn.hocbaso.Signer.Busy");
    auto back = error_from_reply(e);
    CHECK(back.code() == Errc::Busy);
    CHECK(back.parameters().at("retry_after_ms").as_int64() == 200);

    Reply unknown{{}, false, std::string("org.example.Strange")};
    auto u = error_from_reply(unknown);
    CHECK(u.code() == Errc::Internal);
    CHECK(u.detail() == "org.example.Strange");

    CHECK_THROWS(decode_reply("nope"));
    CHECK_THROWS(decode_reply(R"({"parameters":5})"));
}

TEST_CASE("codec: split_method") {
    CHECK(split_method("vn.hocbaso.Signer.Sign") ==
          std::pair<std::string_view, std::string_view>{"vn.hocbaso.Signer", "Sign"});
    CHECK(split_method("Sign").first.empty());
}

TEST_CASE("params: typed access, null as absent, unknown keys refused") {
    json::object o{{"s", "text"},        {"i", 5},       {"u", json::value(std::uint64_t{7})},
                   {"b", true},          {"n", nullptr}, {"a", json::array{1}},
                   {"role", "principal"}};
    Params p(o);
    CHECK(p.string("s") == "text");
    CHECK(p.integer("i") == 5);
    CHECK(p.integer("u") == 7);
    CHECK(p.boolean("b"));
    CHECK_FALSE(p.opt_string("n"));
    CHECK_FALSE(p.opt_integer("missing"));
    CHECK(p.array("a").size() == 1);
    CHECK(p.enumeration("role", {"principal", "school"}) == "principal");
    CHECK_NOTHROW(p.finish());

    json::object extra{{"s", "x"}, {"typo", 1}};
    Params q(extra);
    q.string("s");
    CHECK(invalid_parameter_of([&] { q.finish(); }) == "typo");
}

TEST_CASE("params: each wrong field is named") {
    json::object o{{"s", 1}, {"i", "1"}, {"role", "janitor"}, {"f", 1.5}};
    CHECK(invalid_parameter_of([&] { Params(o).string("s"); }) == "s");
    CHECK(invalid_parameter_of([&] { Params(o).string("absent"); }) == "absent");
    CHECK(invalid_parameter_of([&] { Params(o).integer("i"); }) == "i");
    CHECK(invalid_parameter_of([&] { Params(o).integer("f"); }) == "f");
    CHECK(invalid_parameter_of([&] { Params(o).enumeration("role", {"principal"}); }) == "role");
    CHECK(invalid_parameter_of([&] { Params(o).array("s"); }) == "s");
}

TEST_CASE("codec: UTF-8 validation follows RFC 3629") {
    CHECK(is_valid_utf8(""));
    CHECK(is_valid_utf8("Học bạ số"));
    CHECK(is_valid_utf8("\xF0\x9F\x98\x80"));        // U+1F600
    CHECK_FALSE(is_valid_utf8("v\xC3"));             // cut in half
    CHECK_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
    CHECK_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong
    CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
    CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
    CHECK_FALSE(is_valid_utf8("\xFF"));
    CHECK(repair_utf8("ho\xC3 x") == "ho\xEF\xBF\xBD x");
    CHECK(repair_utf8("ok") == "ok");
}

TEST_CASE("codec: replies are valid UTF-8 even when an error text is not") {
    // A parser message that cut "á" (C3 A1) in half, as libxml2 does near the end of a line.
    const auto e = Error::invalid_document("Comment not terminated: ho\xC3", 13);
    const std::string text = encode_error(e);
    CHECK(is_valid_utf8(text));
    auto r = decode_reply(text);
    CHECK(r.parameters.at("reason").as_string() == "Comment not terminated: ho\xEF\xBF\xBD");
    CHECK(r.parameters.at("line").as_int64() == 13);

    json::object bad_key;
    bad_key["k\xFF"] = "v\xC3";
    auto r2 = decode_reply(encode_reply(bad_key));
    CHECK(r2.parameters.at("k\xEF\xBF\xBD").as_string() == "v\xEF\xBF\xBD");
}
