// Sessions, Sign, SignBatch and Verify against a real SoftHSM2 token through the real daemon.
#include "harness.hpp"
#include "protocol/hex.hpp"
#include "tests/support/catch.hpp"

#include <thread>

using namespace hbsd;
using namespace hbsd::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

std::string M(const char* name) {
    return std::string(kSigner) + name;
}

std::string open_session(Daemon& d, protocol::Client& c, json::object extra = {}) {
    json::object p{{"token", d.token_uri()}, {"pin", kPin}};
    for (auto& [k, v] : extra) p[k] = v;
    return std::string(c.call(M("OpenSession"), std::move(p)).at("session").as_string());
}

Error error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e;
    }
    throw std::runtime_error("expected an hbsd::Error");
}

std::string sig_id(const char* stage, const std::string& record, const char* subject = nullptr) {
    std::string id = std::string("SIG-") + stage + "-" + record + "-" + kYear;
    if (subject) id += std::string("-") + subject;
    return id;
}

std::int64_t signatures_made(protocol::Client& c) {
    return c.call(M("Status")).at("signatures").as_int64();
}

// Sign with `key_label` as TOAN's subject teacher must be refused as PolicyViolation wrong_key
// saying `why`, and leave only what the contract allows ("Every error leaves the store, the
// registry and the document unchanged"; handlers_sign.cpp audits a refusal with the
// document's hash, never its body): one audit entry, denied, without a document after it and
// with nothing archived under it, no record state, no signature counted.
void check_wrong_key(Daemon& d, protocol::Client& c, const std::string& session,
                     const std::string& key_label, const std::string& why,
                     const std::optional<std::string>& fingerprint) {
    const std::string doc = fixture();
    auto e = error_of([&] {
        c.call(M("Sign"),
               sign_params(session, d.key_uri(key_label), "subject_teacher", doc, "TOAN"));
    });
    CHECK(e.code() == Errc::PolicyViolation);
    CHECK(e.parameters().at("reason").as_string() == "wrong_key");
    CHECK(e.parameters().at("detail").as_string() == why);

    const auto entries = c.call(M("GetAuditLog")).at("entries").as_array();
    REQUIRE(entries.size() == 1);
    const auto& entry = entries[0].as_object();
    CHECK(entry.at("method").as_string() == "Sign");
    CHECK(entry.at("outcome").as_string() == "denied");
    CHECK(entry.at("role").as_string() == "subject_teacher");
    CHECK(entry.at("document_before").as_string() == sha256_hex(doc));
    CHECK(entry.at("document_after").is_null());
    // The certificate that was refused, when there was one.
    if (fingerprint)
        CHECK(entry.at("fingerprint").as_string() == *fingerprint);
    else
        CHECK(entry.at("fingerprint").is_null());
    const std::string detail(entry.at("detail").as_string());
    CHECK(detail.starts_with("subject TOAN: "));  // the request's context stays with the refusal
    CHECK(detail.find("PolicyViolation") != std::string::npos);
    CHECK(detail.find("wrong_key") != std::string::npos);
    CHECK(detail.find("<HocBa") == std::string::npos);
    CHECK(error_of([&] {
              c.call("vn.hocbaso.SignerAdmin.GetArchived", {{"seq", entry.at("seq")}});
          }).code() == Errc::InvalidParameter);
    CHECK(error_of([&] {
              c.call(M("GetRecord"), {{"record", kFixtureRecord}});
          }).code() == Errc::RecordNotFound);
    CHECK(signatures_made(c) == 0);
    const auto audit = c.call(M("VerifyAuditLog"));
    CHECK(audit.at("ok").as_bool());
    CHECK(audit.at("entries").as_int64() == 1);
}

}  // namespace

TEST_CASE("signing: the four-stage chain of the fixture and a valid Verify") {
    Daemon d;
    auto c = d.client();
    const auto session = open_session(d, c);
    CHECK(session.size() == 32);
    CHECK(session.find_first_not_of("0123456789abcdef") == std::string::npos);

    std::string doc = fixture();
    auto v0 = c.call(M("Verify"), {{"document", doc}});
    CHECK(v0.at("verdict").as_string() == "incomplete");
    CHECK(v0.at("signatures").as_array().empty());
    CHECK(v0.at("years").as_array()[0].at("stage").as_string() == "none");
    CHECK(v0.at("years").as_array()[0].at("missing_subjects").as_array().size() == 12);

    // Signing out of order is refused and changes nothing.
    auto early = error_of(
        [&] { c.call(M("Sign"), sign_params(session, d.key_uri("ht"), "principal", doc)); });
    CHECK(early.code() == Errc::PolicyViolation);
    CHECK(early.parameters().at("reason").as_string() == "order");

    std::int64_t last_seq = 0;
    auto sign = [&](const std::string& key, const char* role, std::optional<std::string> subject) {
        auto r = c.call(M("Sign"), sign_params(session, d.key_uri(key), role, doc, subject));
        doc = std::string(r.at("document").as_string());
        const auto seq = r.at("audit_seq").as_int64();
        // Audit entries are shared with refusals (the early one above has its own): increasing.
        CHECK(seq > last_seq);
        last_seq = seq;
        return json::value_to<protocol::SignatureInfo>(r.at("signature"));
    };
    for (const auto& s : kSubjects) {
        auto info = sign("gvbm-" + s, "subject_teacher", s);
        CHECK(info.id == sig_id("GVBM", kFixtureRecord, s.c_str()));
        CHECK(info.role == "subject_teacher");
        CHECK(info.subject == s);
        CHECK(info.valid);
        CHECK(info.trusted);
        CHECK(info.in_order);
        CHECK_FALSE(info.registered);
        CHECK(info.signer.find("Giao vien " + s) != std::string::npos);
    }
    auto twice = error_of([&] {
        c.call(M("Sign"),
               sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher", doc, "TOAN"));
    });
    CHECK(twice.parameters().at("reason").as_string() == "already_signed");

    CHECK(sign("gvcn", "homeroom_teacher", {}).id == sig_id("GVCN", kFixtureRecord));
    CHECK(sign("ht", "principal", {}).id == sig_id("HT", kFixtureRecord));
    auto seal = sign("truong", "school", {});  // EC P-256: ecdsa_sha256
    CHECK(seal.id == sig_id("TRUONG", kFixtureRecord));
    CHECK(seal.valid);

    auto v = json::value_to<protocol::VerifyResult>(
        json::value(c.call(M("Verify"), {{"document", doc}})));
    CHECK(v.verdict == "valid");
    CHECK(v.record == kFixtureRecord);
    REQUIRE(v.years.size() == 1);
    CHECK(v.years[0].stage == "school");
    CHECK(v.years[0].school == "94000123");
    CHECK(v.years[0].class_ == "6A1");
    CHECK(v.years[0].missing_subjects.empty());
    REQUIRE(v.signatures.size() == 15);
    for (const auto& s : v.signatures) {
        CHECK(s.valid);
        CHECK(s.trusted);
        CHECK(s.in_order);
        CHECK_FALSE(s.registered);
        CHECK(std::find(s.problems.begin(), s.problems.end(), "registry not configured") !=
              s.problems.end());
    }
    CHECK(signatures_made(c) == 15);

    // One byte changed in a signed region: invalid.
    std::string tampered = doc;
    tampered.replace(tampered.find("<DiemHK1>8.5"), 12, "<DiemHK1>9.5");
    CHECK(c.call(M("Verify"), {{"document", tampered}}).at("verdict").as_string() == "invalid");
}

TEST_CASE("signing: Verify judges trust against the configured anchors") {
    Daemon signer;  // trusts the test CA: makes a signed document
    auto c = signer.client();
    const auto session = open_session(signer, c);
    auto r = c.call(M("Sign"), sign_params(session, signer.key_uri("gvbm-TOAN"), "subject_teacher",
                                           fixture(), "TOAN"));
    const std::string doc(r.at("document").as_string());

    Daemon untrusting(DaemonOptions().no_trust());
    auto u = untrusting.client();
    auto v = json::value_to<protocol::VerifyResult>(
        json::value(u.call(M("Verify"), {{"document", doc}})));
    CHECK(v.verdict == "invalid");
    REQUIRE(v.signatures.size() == 1);
    CHECK(v.signatures[0].valid);
    CHECK_FALSE(v.signatures[0].trusted);
    // ... and refuses to sign with a key whose certificate it does not trust.
    const auto s2 = open_session(untrusting, u);
    auto e = error_of([&] {
        u.call(M("Sign"), sign_params(s2, untrusting.key_uri("gvbm-NGUVAN"), "subject_teacher", doc,
                                      "NGUVAN"));
    });
    CHECK(e.code() == Errc::PolicyViolation);
    CHECK(e.parameters().at("reason").as_string() == "untrusted_certificate");
    // The audit names the certificate it refused.
    const auto entries = u.call(M("GetAuditLog")).at("entries").as_array();
    REQUIRE_FALSE(entries.empty());
    const auto& refused = entries.back().as_object();
    CHECK(refused.at("outcome").as_string() == "denied");
    REQUIRE(refused.at("fingerprint").is_string());
    CHECK(refused.at("fingerprint").as_string().size() == 64);
}

TEST_CASE("signing: a key with no certificate beside it is refused as wrong_key") {
    // An RSA key pair of its own on the daemon's token, and no certificate object with its id.
    Daemon d(DaemonOptions().with_token([](const fs::path& dir) {
        pkcs11_tool(dir, "--keypairgen --key-type rsa:2048 --id a1 --label no-certificate");
    }));
    auto c = d.client();
    const auto session = open_session(d, c);
    check_wrong_key(d, c, session, "no-certificate", "no certificate is stored beside the key",
                    std::nullopt);

    // The same request with a key that has its certificate is signed and recorded: the refusal
    // came from the key, not from the document or the session.
    const auto r = c.call(M("Sign"), sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher",
                                                 fixture(), "TOAN"));
    CHECK(r.at("audit_seq").as_int64() == 2);
    CHECK(c.call(M("GetRecord"), {{"record", kFixtureRecord}})
              .at("record")
              .at("record")
              .as_string() == kFixtureRecord);
    CHECK(signatures_made(c) == 1);
}

TEST_CASE("signing: a key whose certificate holds neither an RSA nor an EC key is wrong_key") {
    // An RSA key pair beside an Ed25519 certificate with the same id. With the registry on, as
    // here, the certificate's trust is judged by the registry after the key is chosen, so the
    // key type is what refuses it; without the registry the trust check comes first and
    // refuses an Ed25519 certificate as untrusted_certificate (weak_key).
    std::string der;
    Daemon d(DaemonOptions().with_registry().with_token([&der](const fs::path& dir) {
        const std::string key = (dir / "ed25519.key").string();
        der = (dir / "ed25519.der").string();
        REQUIRE(std::system(("openssl req -x509 -newkey ed25519 -nodes -keyout '" + key +
                             "' -subj '/C=VN/O=94000123/CN=Ed25519 signer' -days 30 "
                             "-outform DER -out '" +
                             der + "' 2>/dev/null")
                                .c_str()) == 0);
        pkcs11_tool(dir, "--keypairgen --key-type rsa:2048 --id a2 --label ed25519-certificate");
        pkcs11_tool(dir,
                    "--write-object '" + der + "' --type cert --id a2 --label ed25519-certificate");
    }));
    auto c = d.client();
    const auto session = open_session(d, c);
    check_wrong_key(
        d, c, session, "ed25519-certificate",
        "the certificate beside the key is not valid DER, or its key is neither RSA nor EC",
        sha256_hex(read_file(der)));

    // A key with its RSA certificate gets past the key to the registry (which has never heard
    // of it): the refusal above was the key's.
    auto e = error_of([&] {
        c.call(M("Sign"),
               sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(), "TOAN"));
    });
    CHECK(e.code() == Errc::PolicyViolation);
    CHECK(e.parameters().at("reason").as_string() == "not_registered");
    CHECK(signatures_made(c) == 0);
}

TEST_CASE("signing: SignBatch of a 40-student class with one bad record") {
    Daemon d;
    auto c = d.client();
    const auto session = open_session(d, c);
    json::array items;
    for (int n = 1; n <= 40; ++n) {
        std::string doc = fixture_student(n);
        if (n == 17) doc.erase(doc.find("</HocBa>"));  // not well-formed
        items.push_back(json::object{{"document", doc}});
    }
    json::object p{{"session", session},        {"key", d.key_uri("gvbm-TOAN")},
                   {"role", "subject_teacher"}, {"year", kYear},
                   {"subject", "TOAN"},         {"items", items}};
    auto r = c.call(M("SignBatch"), p);
    const auto& results = r.at("results").as_array();
    REQUIRE(results.size() == 40);
    std::vector<std::string> signed_docs;
    for (int n = 1; n <= 40; ++n) {
        auto br = json::value_to<protocol::BatchResult>(results[n - 1]);
        if (n == 17) {
            CHECK_FALSE(br.document);
            CHECK(br.error == "vn.hocbaso.Signer.InvalidDocument");
            REQUIRE(br.error_parameters);
            CHECK(br.error_parameters->at("reason").is_string());
            continue;
        }
        REQUIRE(br.document);
        CHECK_FALSE(br.error);
        char code[32];
        std::snprintf(code, sizeof code, "94000123-2024-%04d", n);
        CHECK(br.signature->id == sig_id("GVBM", code, "TOAN"));
        CHECK(br.document->find(std::string("<MaDinhDanh>") + code) != std::string::npos);
        signed_docs.push_back(*br.document);
    }
    CHECK(signatures_made(c) == 39);

    // The next subject, streamed: one reply per record as it is made.
    json::array next;
    for (const auto& doc : signed_docs) next.push_back(json::object{{"document", doc}});
    p["key"] = d.key_uri("gvbm-NGUVAN");
    p["subject"] = "NGUVAN";
    p["items"] = next;
    int replies = 0, continuing = 0;
    c.call_more(M("SignBatch"), p, [&](const json::object& part, bool continues) {
        ++replies;
        continuing += continues;
        REQUIRE(part.at("results").as_array().size() == 1);
        CHECK(part.at("results").as_array()[0].as_object().contains("document"));
    });
    CHECK(replies == 39);
    CHECK(continuing == 38);

    auto v = c.call(M("Verify"), {{"document", signed_docs[0]}});
    CHECK(v.at("verdict").as_string() == "incomplete");
    CHECK(v.at("signatures").as_array().size() == 1);

    // Over max_batch_items: refused as a whole.
    Daemon small(DaemonOptions().limit("max_batch_items", 3));
    auto sc = small.client();
    json::array four(4, json::object{{"document", fixture()}});
    json::object q{{"session", open_session(small, sc)},
                   {"key", small.key_uri("gvbm-TOAN")},
                   {"role", "subject_teacher"},
                   {"year", kYear},
                   {"subject", "TOAN"},
                   {"items", four}};
    auto e = error_of([&] { sc.call(M("SignBatch"), q); });
    CHECK(e.code() == Errc::InvalidParameter);
    CHECK(e.parameters().at("parameter").as_string() == "items");
}

TEST_CASE(
    "signing: a SignBatch signs items side by side, answers in order, signs a request_id once") {
    // Items run in parallel lanes (up to the cores, worker_threads and 4); the replies must
    // still come in item order, and two items with one request_id are one signature.
    Daemon d;
    auto c = d.client();
    const auto session = open_session(d, c);
    json::array items;
    for (int n = 1; n <= 24; ++n) {
        json::object item{{"document", fixture_student(n)},
                          {"request_id", "batch-order-" + std::to_string(n)}};
        items.push_back(item);
    }
    // Item 13 repeats item 12 exactly (same document, same request_id).
    items[12] = items[11];
    json::object p{{"session", session},        {"key", d.key_uri("gvbm-TOAN")},
                   {"role", "subject_teacher"}, {"year", kYear},
                   {"subject", "TOAN"},         {"items", items}};
    std::vector<protocol::BatchResult> got;
    c.call_more(M("SignBatch"), p, [&](const json::object& part, bool) {
        for (const auto& v : part.at("results").as_array())
            got.push_back(json::value_to<protocol::BatchResult>(v));
    });
    REQUIRE(got.size() == 24);
    for (int n = 1; n <= 24; ++n) {
        INFO("item " << n);
        const auto& br = got[static_cast<std::size_t>(n - 1)];
        REQUIRE(br.document);
        const int student = n == 13 ? 12 : n;
        char code[32];
        std::snprintf(code, sizeof code, "94000123-2024-%04d", student);
        CHECK(br.document->find(std::string("<MaDinhDanh>") + code) != std::string::npos);
        CHECK(br.signature->id == sig_id("GVBM", code, "TOAN"));
    }
    CHECK(*got[11].document == *got[12].document);
    CHECK(got[11].audit_seq == got[12].audit_seq);
    CHECK(signatures_made(c) == 23);
}

TEST_CASE("signing: request_id makes Sign idempotent") {
    Daemon d;
    auto c = d.client();
    const auto session = open_session(d, c);
    auto p = sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(), "TOAN");
    p["request_id"] = "class-6A1-TOAN-0001";
    const auto first = c.call(M("Sign"), p);
    std::this_thread::sleep_for(1100ms);  // a second signature would carry another SigningTime
    const auto again = c.call(M("Sign"), p);
    CHECK(again == first);
    CHECK(signatures_made(c) == 1);

    // Even after the session is gone, the stored result comes back.
    c.call(M("CloseSession"), {{"session", session}});
    CHECK(c.call(M("Sign"), p) == first);

    // The same id for another request is an error, not someone else's document.
    auto other = p;
    other["document"] = fixture_student(2);
    auto e = error_of([&] { c.call(M("Sign"), other); });
    CHECK(e.code() == Errc::InvalidParameter);
    CHECK(e.parameters().at("parameter").as_string() == "request_id");

    // Concurrent retries of a new request: one signature, the same answer for both.
    const auto s2 = open_session(d, c);
    auto p2 =
        sign_params(s2, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture_student(3), "TOAN");
    p2["request_id"] = "concurrent";
    json::object r1, r2;
    std::string e1, e2;
    std::thread t1([&] { e1 = outcome([&] { r1 = d.client().call(M("Sign"), p2); }); });
    std::thread t2([&] { e2 = outcome([&] { r2 = d.client().call(M("Sign"), p2); }); });
    t1.join();
    t2.join();
    CHECK(e1 == "ok");
    CHECK(e2 == "ok");
    CHECK(r1 == r2);
    CHECK(signatures_made(c) == 2);

    // A batch item with a known request_id gets the stored result too.
    json::object b{{"session", s2},
                   {"key", d.key_uri("gvbm-TOAN")},
                   {"role", "subject_teacher"},
                   {"year", kYear},
                   {"subject", "TOAN"},
                   {"items", json::array{json::object{{"document", fixture_student(3)},
                                                      {"request_id", "concurrent"}}}}};
    auto br = c.call(M("SignBatch"), b).at("results").as_array()[0].as_object();
    CHECK(br.at("document") == r1.at("document"));
    CHECK(br.at("audit_seq") == r1.at("audit_seq"));
    CHECK(signatures_made(c) == 2);
}

TEST_CASE("sessions: wrong PIN; unknown session; closed session; unknown key") {
    Daemon d;
    auto c = d.client();
    auto wrong = error_of([&] {
        c.call(M("OpenSession"), {{"token", d.token_uri()}, {"pin", "0000"}});
    });
    CHECK(wrong.code() == Errc::PinIncorrect);
    CHECK(error_of([&] {
              c.call(M("OpenSession"), {{"token", "pkcs11:token=nope"}, {"pin", kPin}});
          }).code() == Errc::TokenNotFound);

    const auto unknown = std::string(32, 'a');
    auto e = error_of(
        [&] { c.call(M("Sign"), sign_params(unknown, d.key_uri("ht"), "principal", fixture())); });
    CHECK(e.code() == Errc::SessionNotFound);
    CHECK(e.parameters().at("session").as_string() == unknown);

    const auto session = open_session(d, c);
    CHECK(c.call(M("Status")).at("sessions").as_int64() == 1);
    auto k = error_of([&] {
        c.call(M("Sign"), sign_params(session, d.token_uri() + ";object=nobody;type=private",
                                      "principal", fixture()));
    });
    CHECK(k.code() == Errc::KeyNotFound);
    c.call(M("CloseSession"), {{"session", session}});
    CHECK(c.call(M("Status")).at("sessions").as_int64() == 0);
    CHECK(error_of([&] {
              c.call(M("Sign"), sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher",
                                            fixture(), "TOAN"));
          }).code() == Errc::SessionNotFound);
    CHECK(error_of([&] {
              c.call(M("CloseSession"), {{"session", session}});
          }).code() == Errc::SessionNotFound);
}

TEST_CASE("sessions: ttl_s and max_signatures end a session with SessionExpired") {
    Daemon d(DaemonOptions().limit("session_ttl_s", 300).limit("session_ttl_max_s", 600));
    auto c = d.client();
    const auto short_lived = open_session(d, c, {{"ttl_s", 1}});
    std::this_thread::sleep_for(1500ms);
    auto e = error_of([&] {
        c.call(M("Sign"), sign_params(short_lived, d.key_uri("gvbm-TOAN"), "subject_teacher",
                                      fixture(), "TOAN"));
    });
    CHECK(e.code() == Errc::SessionExpired);
    CHECK(e.parameters().at("session").as_string() == short_lived);
    CHECK(signatures_made(c) == 0);

    const auto once = open_session(d, c, {{"max_signatures", 1}});
    c.call(M("Sign"),
           sign_params(once, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(), "TOAN"));
    CHECK(error_of([&] {
              c.call(M("Sign"), sign_params(once, d.key_uri("gvbm-TOAN"), "subject_teacher",
                                            fixture_student(2), "TOAN"));
          }).code() == Errc::SessionExpired);

    // A ttl over the maximum is cut to it.
    auto r = c.call(M("OpenSession"), {{"token", d.token_uri()}, {"pin", kPin}, {"ttl_s", 999999}});
    const std::string expires(r.at("expires_at").as_string());
    CHECK(expires.size() == 20);
    CHECK(expires.back() == 'Z');
    CHECK(error_of([&] {
              c.call(M("OpenSession"), {{"token", d.token_uri()}, {"pin", kPin}, {"ttl_s", 0}});
          })
              .parameters()
              .at("parameter")
              .as_string() == "ttl_s");
}

TEST_CASE("sessions: belong to the uid that opened them") {
    Daemon d(DaemonOptions().grant(kNobody, R"(["sign"])"));
    auto c = d.client();
    const auto session = open_session(d, c);  // root's
    const auto key = d.key_uri("gvbm-TOAN");
    const auto doc = fixture();
    const auto r = as_uid(kNobody, [&] {
        auto other = protocol::Client::connect(d.socket());
        std::string s;
        try {
            other.call(M("Sign"), sign_params(session, key, "subject_teacher", doc, "TOAN"));
            s = "signed";
        } catch (const Error& e) {
            s = std::string(error_name(e.code())) + " " + json::serialize(e.parameters());
        }
        s += " " + outcome([&] { other.call(M("CloseSession"), {{"session", session}}); });
        return s;
    });
    CHECK(r ==
          R"(vn.hocbaso.Signer.PermissionDenied {"uid":65534,"method":"vn.hocbaso.Signer.Sign"} )"
          "vn.hocbaso.Signer.PermissionDenied");
    // Untouched: the owner still signs with it.
    CHECK(c.call(M("Sign"), sign_params(session, key, "subject_teacher", doc, "TOAN"))
              .contains("document"));
}

TEST_CASE("sessions: a token that goes away ends its sessions") {
    Daemon d(DaemonOptions().with_faults());
    auto c = d.client();
    const auto session = open_session(d, c);
    const auto key = d.key_uri("gvbm-TOAN");
    CHECK(c.call(M("Status")).at("sessions").as_int64() == 1);
    d.set_faults("token_present=0\n");
    // Housekeeping notices within a couple of seconds, without anyone signing.
    std::int64_t open = 1;
    for (int i = 0; i < 50 && open != 0; ++i) {
        std::this_thread::sleep_for(100ms);
        open = c.call(M("Status")).at("sessions").as_int64();
    }
    CHECK(open == 0);
    CHECK(error_of([&] {
              c.call(M("ListKeys"), {{"token", d.token_uri()}});
          }).code() == Errc::TokenNotPresent);
    d.set_faults("");
    auto e = error_of([&] {
        c.call(M("Sign"), sign_params(session, key, "subject_teacher", fixture(), "TOAN"));
    });
    CHECK(e.code() == Errc::SessionExpired);
    // Back: a new login works.
    const auto again = open_session(d, c);
    CHECK(c.call(M("Sign"), sign_params(again, key, "subject_teacher", fixture(), "TOAN"))
              .contains("document"));
}

TEST_CASE("sessions: a locked PIN is PinLocked") {
    Daemon d(DaemonOptions().with_faults());
    auto c = d.client();
    d.set_faults("token_flags=pin_locked\nlogin=CKR_PIN_LOCKED\n");
    auto e = error_of([&] { open_session(d, c); });
    CHECK(e.code() == Errc::PinLocked);
}

TEST_CASE("signing: a document over max_document_bytes is DocumentTooLarge") {
    Daemon d(DaemonOptions().limit("max_document_bytes", 4096));
    auto c = d.client();
    auto e = error_of([&] { c.call(M("Verify"), {{"document", fixture()}}); });  // about 5 KB
    CHECK(e.code() == Errc::DocumentTooLarge);
    CHECK(e.parameters().at("limit").as_int64() == 4096);
    CHECK(e.parameters().at("size").as_int64() == static_cast<std::int64_t>(fixture().size()));
}
