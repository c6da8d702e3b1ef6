// Safe parsing and the profile's structure: what is refused before any signature is looked at.
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <xmlsec/parser.h>

#include <chrono>

#include "dsig/document.hpp"
#include "dsig/parse.hpp"
#include "support.hpp"
#include "tests/support/catch.hpp"

using namespace hbsd;
using namespace hbsd::test;

namespace {

// Runs f, which must throw hbsd::Error; returns it.
template <typename F>
Error error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no hbsd::Error was thrown");
    throw;  // unreachable
}

Error parse_error(const std::string& xml, const dsig::Limits& limits = {}) {
    return error_of([&] { (void)dsig::Document::parse(xml, limits); });
}

// Counts every attempt libxml2 makes to load an external entity or DTD, while alive.
int g_loads = 0;
xmlParserInputPtr counting_loader(const char*, const char*, xmlParserCtxtPtr) {
    ++g_loads;
    return nullptr;
}
struct LoaderSpy {
    xmlExternalEntityLoader old;
    LoaderSpy() : old(xmlGetExternalEntityLoader()) {
        g_loads = 0;
        xmlSetExternalEntityLoader(counting_loader);
    }
    ~LoaderSpy() { xmlSetExternalEntityLoader(old); }
};

std::string nested(int depth) {
    std::string s;
    for (int i = 0; i < depth; ++i) s += "<a>";
    for (int i = 0; i < depth; ++i) s += "</a>";
    return s;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("the fixture parses, validates and reports its structure") {
    auto doc = dsig::Document::parse(fixture());
    CHECK(doc.record() == kRecord);
    REQUIRE(doc.years().size() == 1);
    const auto& y = doc.years()[0];
    CHECK(y.year == kYear);
    CHECK(y.school == "94000123");
    CHECK(y.school_name == "Trường THCS Lê Quý Đôn");
    CHECK(y.class_name == "6A1");
    CHECK(y.grade == "6");
    CHECK(y.subjects == kSubjects);
    CHECK(y.missing_subjects == kSubjects);
    CHECK_FALSE(y.stage.has_value());
    CHECK(doc.report().signatures.empty());
    CHECK(doc.report().verdict() == dsig::Report::Verdict::incomplete);
}

TEST_CASE("a DOCTYPE with an external entity (XXE) is refused and nothing is read") {
    LoaderSpy spy;
    std::string xml = R"(<?xml version="1.0"?>
<!DOCTYPE HocBa [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<HocBa xmlns="urn:vn:hocbaso:1">&x;</HocBa>)";
    Error e = parse_error(xml);
    CHECK(e.code() == Errc::InvalidDocument);
    CHECK(param(e, "reason") == "DOCTYPE is not allowed");
    CHECK(param(e, "line") == "2");
    CHECK(g_loads == 0);

    // An external DTD only, and a parameter entity: the same, before anything is fetched.
    Error e2 = parse_error(
        "<!DOCTYPE HocBa SYSTEM \"file:///etc/passwd\"><HocBa xmlns=\"urn:vn:hocbaso:1\"/>");
    CHECK(param(e2, "reason") == "DOCTYPE is not allowed");
    Error e3 =
        parse_error("<!DOCTYPE HocBa [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]><HocBa/>");
    CHECK(param(e3, "reason") == "DOCTYPE is not allowed");
    CHECK(g_loads == 0);
}

TEST_CASE("billion laughs is refused at the DOCTYPE, before any expansion") {
    std::string xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n";
    xml += "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n";
    for (int i = 2; i <= 9; ++i) {
        std::string prev = "&lol" + std::to_string(i - 1) + ";";
        xml += "<!ENTITY lol" + std::to_string(i) + " \"";
        for (int k = 0; k < 10; ++k) xml += prev;
        xml += "\">\n";
    }
    xml += "]>\n<HocBa xmlns=\"urn:vn:hocbaso:1\">&lol9;</HocBa>\n";
    auto t0 = std::chrono::steady_clock::now();
    Error e = parse_error(xml);
    double ms = ms_since(t0);
    CHECK(param(e, "reason") == "DOCTYPE is not allowed");
    CHECK(ms < 100);  // loose sanity bound; the reason above is the real assertion

    // Without a DOCTYPE an entity reference is just an undeclared entity.
    Error e2 = parse_error("<HocBa xmlns=\"urn:vn:hocbaso:1\">&lol9;</HocBa>");
    CHECK(e2.code() == Errc::InvalidDocument);
    CHECK(param(e2, "reason").find("lol9") != std::string::npos);
}

TEST_CASE("nesting: depth 64 parses, depth 65 is refused during the parse") {
    dsig::Limits limits;
    CHECK_NOTHROW(dsig::parse_xml(nested(64), limits));
    auto t0 = std::chrono::steady_clock::now();
    Error e = error_of([&] { dsig::parse_xml(nested(65), limits); });
    CHECK(e.code() == Errc::InvalidDocument);
    CHECK(param(e, "reason") == "elements nested deeper than 64");
    CHECK(param(e, "line") == "1");
    // A very deep document stops at the limit, not at the end (or at libxml2's own 256).
    std::string deep = nested(100000);
    Error e2 = error_of([&] { dsig::parse_xml(deep, limits); });
    CHECK(param(e2, "reason") == "elements nested deeper than 64");
    CHECK(ms_since(t0) < 100);
    // Configurable.
    dsig::Limits shallow;
    shallow.max_depth = 3;
    CHECK_NOTHROW(dsig::parse_xml(nested(3), shallow));
    CHECK_THROWS_AS(dsig::parse_xml(nested(4), shallow), Error);
}

TEST_CASE("size: over the limit is DocumentTooLarge before parsing") {
    const std::size_t limit = 8u << 20;
    std::string big(limit + 1, ' ');  // not even XML: the size check comes first
    Error e = parse_error(big);
    CHECK(e.code() == Errc::DocumentTooLarge);
    CHECK(param(e, "size") == std::to_string(limit + 1));
    CHECK(param(e, "limit") == std::to_string(limit));
    // Exactly at the limit it is parsed (and fails for being blanks, not for its size).
    std::string at(limit, ' ');
    CHECK(parse_error(at).code() == Errc::InvalidDocument);
    // A valid document padded with a comment to exactly 8 MiB is fine.
    std::string padded = fixture();
    padded += "<!--" + std::string(limit - padded.size() - 8, 'x') + "-->";
    padded += "\n";
    REQUIRE(padded.size() == limit);
    CHECK_NOTHROW(dsig::Document::parse(padded));
    dsig::Limits small;
    small.max_bytes = 1000;
    CHECK(parse_error(fixture(), small).code() == Errc::DocumentTooLarge);
}

TEST_CASE("node count: a million comments are refused during the parse") {
    std::string xml = "<HocBa xmlns=\"urn:vn:hocbaso:1\">";
    for (int i = 0; i < 1000000; ++i) xml += "<!---->";
    xml += "</HocBa>";
    REQUIRE(xml.size() < (8u << 20));
    auto t0 = std::chrono::steady_clock::now();
    Error e = parse_error(xml);
    CHECK(param(e, "reason") == "more than 200000 nodes");
    CHECK(ms_since(t0) < 1000);  // loose sanity bound
    dsig::Limits few;
    few.max_nodes = 10;
    CHECK(param(parse_error(fixture(), few), "reason") == "more than 10 nodes");
    CHECK(param(parse_error("<a><?pi x?><?pi x?></a>", {8u << 20, 64, 2}), "reason") ==
          "more than 2 nodes");
    CHECK(param(parse_error("<a><![CDATA[x]]><![CDATA[y]]></a>", {8u << 20, 64, 2}), "reason") ==
          "more than 2 nodes");
    CHECK_NOTHROW(dsig::Document::parse(fully_signed()));  // well below the default
}

TEST_CASE("invalid UTF-8 and other encodings are refused") {
    for (std::string bad :
         {std::string("\xC3\x28"), std::string("\xC0\xAF"), std::string("\xED\xA0\x80"),
          std::string("\xF8\x88\x80\x80\x80"), std::string("\xFF"), std::string("\xE1\xBB")}) {
        std::string xml = replace_once(fixture(), "Khmer", "Kh" + bad + "mer");
        Error e = parse_error(xml);
        CHECK(e.code() == Errc::InvalidDocument);
        CHECK(param(e, "line") == "12");
    }
    std::string latin1 = replace_once(fixture(), "encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"");
    CHECK(param(parse_error(latin1), "reason") == "the encoding must be UTF-8");
    std::string utf16 = "\xFF\xFE<\0H\0";
    CHECK(param(parse_error(utf16), "reason") == "the document is not UTF-8");
    // A UTF-8 byte order mark is fine.
    CHECK_NOTHROW(dsig::Document::parse("\xEF\xBB\xBF" + fixture()));
}

TEST_CASE("malformed XML carries libxml2's line") {
    std::string xml = replace_once(fixture(), "<CapHoc>THCS</CapHoc>", "<CapHoc>THCS</Cap>");
    Error e = parse_error(xml);
    CHECK(e.code() == Errc::InvalidDocument);
    CHECK(param(e, "line") == "7");
    CHECK_FALSE(param(e, "reason").empty());
}

TEST_CASE("the XSD refuses unknown and misplaced elements") {
    Error e = parse_error(replace_once(fixture(), "<CapHoc>", "<Foo/><CapHoc>"));
    CHECK(param(e, "reason").rfind("schema:", 0) == 0);
    CHECK(param(e, "line") == "7");
    // ChuKy holds signatures only
    CHECK(param(parse_error(replace_once(fixture(), "<ChuKy/>", "<ChuKy><HoTen>x</HoTen></ChuKy>")),
                "reason")
              .rfind("schema:", 0) == 0);
    // an element from another namespace inside MonHoc
    CHECK(
        parse_error(replace_once(fixture(), "</NhanXet>", "</NhanXet><x:y xmlns:x=\"urn:evil\"/>"))
            .code() == Errc::InvalidDocument);
    // KetQua before ThongTinNamHoc
    std::string f = fixture();
    auto tt_b = f.find("<ThongTinNamHoc");
    auto tt_e = f.find("/>", tt_b) + 2;
    std::string tt = f.substr(tt_b, tt_e - tt_b);
    f.erase(tt_b, tt_e - tt_b);
    f = replace_once(f, "<ChuKy/>", tt + "<ChuKy/>");
    CHECK(param(parse_error(f), "reason").rfind("schema:", 0) == 0);
    // an attribute the profile does not know
    CHECK(parse_error(replace_once(fixture(), "<HocSinh ", "<HocSinh Foo=\"1\" ")).code() ==
          Errc::InvalidDocument);
    // a ds: element that is not a Signature in ChuKy: the XSD skips ds:, the profile refuses
    Error e2 = parse_error(replace_once(
        fixture(), "<ChuKy/>",
        "<ChuKy><ds:Object xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/></ChuKy>"));
    CHECK(param(e2, "reason") == "ChuKy holds only ds:Signature elements");
}

TEST_CASE("the XSD bounds codes: closed alphabet, maximum length") {
    // hb:Code is 1 to 32 characters of [A-Za-z0-9_-], not starting with _ or -.
    const std::string f = fixture();
    const auto b = f.find("<MaHocSinh>") + 11;
    const auto e = f.find("</MaHocSinh>");
    auto with_code = [&](const std::string& code) {
        std::string g = f;
        g.replace(b, e - b, code);
        return g;
    };
    CHECK_NOTHROW(dsig::Document::parse(with_code(std::string(32, 'A'))));
    CHECK_NOTHROW(dsig::Document::parse(with_code("A" + std::string(31, '-'))));
    for (const std::string& bad : {std::string(33, 'A'), std::string("-A"), std::string("A B"),
                                   std::string("A'B"), std::string("")}) {
        INFO(bad);
        CHECK(param(parse_error(with_code(bad)), "reason").rfind("schema:", 0) == 0);
    }
}

TEST_CASE("Ids: duplicates, wrong values, xml:id") {
    // Duplicate Id on two elements.
    Error e = parse_error(
        replace_once(fixture(), "<SoBuoiNghi ", "<SoBuoiNghi Id=\"HS-94000123-2024-0001\" "));
    // (SoBuoiNghi has no Id in the XSD: the schema refuses it first, which is also fine)
    CHECK(e.code() == Errc::InvalidDocument);
    std::string dup = replace_once(fixture(), "Id=\"MH-94000123-2024-0001-2024-2025-NGUVAN\"",
                                   "Id=\"MH-94000123-2024-0001-2024-2025-TOAN\"");
    Error e2 = parse_error(dup);
    CHECK(param(e2, "reason") == "duplicate Id \"MH-94000123-2024-0001-2024-2025-TOAN\"");
    CHECK(param(e2, "line") == "27");
    // An Id the profile does not dictate.
    Error e3 = parse_error(replace_once(fixture(), "Id=\"HS-94000123-2024-0001\"", "Id=\"HS-1\""));
    CHECK(param(e3, "reason").find("HocSinh/@Id is \"HS-1\"") == 0);
    // xml:id would be registered as an ID by the parser itself.
    Error e4 = parse_error(replace_once(fixture(), "<HocBa ", "<HocBa xml:id=\"x\" "));
    CHECK(e4.code() == Errc::InvalidDocument);
}

TEST_CASE("a relative namespace URI anywhere is refused (no C14N would accept the record)") {
    Error e = parse_error(replace_once(fixture(), "<ChuKy/>",
                                       "<ChuKy><ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/"
                                       "xmldsig#\" xmlns:r=\"relative/ns\"/></ChuKy>"));
    CHECK(param(e, "reason") == "relative namespace URI");
    CHECK_NOTHROW(dsig::Document::parse(
        replace_once(fixture(), "<HocBa ", "<HocBa xmlns:u=\"urn:absolute\" ")));
}

TEST_CASE("NamHoc/@Nam must equal ThongTinNamHoc/@Nam") {
    Error e = parse_error(
        replace_once(fixture(), "<NamHoc Nam=\"2024-2025\">", "<NamHoc Nam=\"2023-2024\">"));
    CHECK(e.code() == Errc::InvalidDocument);
    CHECK(param(e, "reason").find("differs from ThongTinNamHoc/@Nam") != std::string::npos);
    CHECK(param(e, "line") == "19");
}

TEST_CASE("a year twice, a subject twice") {
    std::string f = fixture();
    auto b = f.find("<NamHoc ");
    auto end = f.find("</NamHoc>") + 9;
    std::string twice = f.substr(0, end) + f.substr(b, end - b) + f.substr(end);
    Error e = parse_error(twice);
    CHECK(e.code() == Errc::InvalidDocument);  // duplicate Ids are found first
}

TEST_CASE("the parser options never include entity substitution, DTD loading, XInclude, HUGE") {
    int o = dsig::safe_parse_options();
    CHECK((o & XML_PARSE_NOENT) == 0);
    CHECK((o & XML_PARSE_DTDLOAD) == 0);
    CHECK((o & XML_PARSE_DTDATTR) == 0);
    CHECK((o & XML_PARSE_XINCLUDE) == 0);
    CHECK((o & XML_PARSE_HUGE) == 0);
    CHECK((o & XML_PARSE_NONET) != 0);
    // xmlsec's own default (NONET|NODICT|HUGE) is replaced at initialisation, in case any
    // xmlsec path ever parsed something.
    (void)dsig::Document::parse(fixture());
    CHECK((xmlSecParserGetDefaultOptions() & XML_PARSE_HUGE) == 0);
    CHECK((xmlSecParserGetDefaultOptions() & XML_PARSE_NOENT) == 0);
}
