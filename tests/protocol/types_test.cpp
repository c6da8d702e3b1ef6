#include "protocol/types.hpp"
#include "tests/support/catch.hpp"

using namespace hbsd::protocol;
namespace json = boost::json;

TEST_CASE("types: SignatureInfo maps every field and omits empty optionals") {
    SignatureInfo s;
    s.id = "SIG-GVBM-R-Y-TOAN";
    s.role = "subject_teacher";
    s.subject = "TOAN";
    s.year = "2024-2025";
    s.signer = "CN=x";
    s.fingerprint = "ab";
    s.valid = true;
    s.problems = {"registry not configured"};
    auto o = to_object(s);
    CHECK(o.at("subject").as_string() == "TOAN");
    CHECK_FALSE(o.contains("signing_time"));
    CHECK(o.at("problems").as_array().size() == 1);
    auto back = json::value_to<SignatureInfo>(json::value(o));
    CHECK(back.id == s.id);
    CHECK(back.subject == s.subject);
    CHECK(back.valid);
    CHECK_FALSE(back.trusted);
}

TEST_CASE("types: YearStatus uses the wire name 'class'") {
    YearStatus y{"2024-2025", "94000123", "6A1", "none", {"TOAN"}};
    auto o = to_object(y);
    CHECK(o.at("class").as_string() == "6A1");
    CHECK(json::value_to<YearStatus>(json::value(o)).class_ == "6A1");
}

TEST_CASE("types: BatchResult carries either a document or an error") {
    BatchResult ok;
    ok.document = "<x/>";
    ok.audit_seq = 3;
    auto o = to_object(ok);
    CHECK_FALSE(o.contains("error"));
    CHECK(o.at("audit_seq").as_int64() == 3);

    BatchResult bad;
    bad.error = "vn.hocbaso.Signer.InvalidDocument";
    bad.error_parameters = json::object{{"reason", "r"}};
    auto b = json::value_to<BatchResult>(json::value(to_object(bad)));
    CHECK_FALSE(b.document);
    CHECK(b.error_parameters->at("reason").as_string() == "r");
}

TEST_CASE("types: a record missing a required field is refused") {
    CHECK_THROWS(json::value_to<Token>(json::value(json::object{{"uri", "pkcs11:"}})));
}
