#include "protocol/frame.hpp"
#include "tests/support/catch.hpp"

#include <string>

using hbsd::protocol::encode_frame;
using hbsd::protocol::FrameDecoder;
using namespace std::string_literals;

TEST_CASE("frames: several in one read, in order") {
    FrameDecoder d(100);
    REQUIRE(d.feed("{\"a\":1}\0{\"b\":2}\0{\"c\""s) == FrameDecoder::Status::ok);
    CHECK(d.next() == "{\"a\":1}");
    CHECK(d.next() == "{\"b\":2}");
    CHECK_FALSE(d.next().has_value());
    CHECK(d.partial_bytes() == 4);
    REQUIRE(d.feed(":3}\0"s) == FrameDecoder::Status::ok);
    CHECK(d.next() == "{\"c\":3}");
}

TEST_CASE("frames: a frame fed one byte at a time") {
    const std::string msg = "{\"method\":\"org.varlink.service.GetInfo\"}";
    FrameDecoder d(1000);
    for (char c : msg) {
        REQUIRE(d.feed(std::string_view(&c, 1)) == FrameDecoder::Status::ok);
        CHECK_FALSE(d.has_frame());
    }
    REQUIRE(d.feed("\0"s) == FrameDecoder::Status::ok);
    CHECK(d.next() == msg);
}

TEST_CASE("frames: an empty frame is a frame") {
    FrameDecoder d(10);
    REQUIRE(d.feed("\0"s) == FrameDecoder::Status::ok);
    CHECK(d.next() == "");
}

TEST_CASE("frames: exactly the limit passes, one byte more is refused") {
    FrameDecoder ok(8);
    CHECK(ok.feed("12345678\0"s) == FrameDecoder::Status::ok);
    CHECK(ok.next() == "12345678");

    FrameDecoder over(8);
    CHECK(over.feed("123456789\0"s) == FrameDecoder::Status::too_large);
    CHECK(over.too_large());
    CHECK(over.refused_size() == 9);
    CHECK_FALSE(over.has_frame());
}

TEST_CASE("frames: refused as soon as the unfinished frame passes the limit, memory released") {
    FrameDecoder d(1024);
    const std::string chunk(100, 'x');
    int fed = 0;
    FrameDecoder::Status st = FrameDecoder::Status::ok;
    while (st == FrameDecoder::Status::ok && fed < 1000) {
        st = d.feed(chunk);
        ++fed;
    }
    CHECK(st == FrameDecoder::Status::too_large);
    CHECK(fed == 11);  // 1100 > 1024: the 11th chunk, not some later one
    CHECK(d.partial_bytes() == 0);
    CHECK(d.refused_size() == 1100);
    // Sticky: the stream is out of sync for good.
    CHECK(d.feed("{}\0"s) == FrameDecoder::Status::too_large);
    CHECK_FALSE(d.has_frame());
}

TEST_CASE("frames: complete frames before an oversized one are kept") {
    FrameDecoder d(4);
    CHECK(d.feed("ab\0abcdef"s) == FrameDecoder::Status::too_large);
    CHECK(d.next() == "ab");
}

TEST_CASE("frames: encode appends one NUL") {
    CHECK(encode_frame("{}") == "{}\0"s);
    CHECK(encode_frame("").size() == 1);
}
