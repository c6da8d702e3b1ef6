// The registry through the real daemon: administration methods, every PolicyViolation reason
// of Sign, Verify's trusted/registered, records, and trust refusals at registration and at
// signing (expired, revoked by CRL, untrusted).
#include "store/store.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/temp_dir.hpp"
#include "world.hpp"

#include <csignal>
#include <cstdlib>
#include <thread>

using namespace hbsd;
using namespace hbsd::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

void sh(const std::string& cmd) {
    const std::string log = (fs::temp_directory_path() / "hbsd-regca-sh.log").string();
    if (std::system(("set -e; (" + cmd + ") >" + log + " 2>&1").c_str()) != 0)
        throw std::runtime_error("failed: " + cmd + ": " + read_file(log));
}

// An `openssl ca` database over the harness's test root: a back-dated certificate, one that is
// revoked, a CRL before and after revoking (that one and gvbm-TOAN), and a foreign CA.
struct CaDb {
    // Declared before `dir`: removes the directory also when the constructor throws.
    TempDir tmp{"hbsd-regca-"};
    fs::path dir = tmp.path();
    CaDb() {
        const std::string d = dir.string(), pki = pki_dir().string();
        write_file(dir / "ca.cnf", "[ca]\ndefault_ca = tca\n[tca]\ndir = " + d +
                                       "/cadb\ndatabase = $dir/index.txt\nnew_certs_dir = "
                                       "$dir/new\nserial = $dir/serial\ncrlnumber = "
                                       "$dir/crlnumber\ncertificate = " +
                                       pki + "/ca.pem\nprivate_key = " + pki +
                                       "/ca.key\ndefault_md = sha256\ndefault_days = 365\n"
                                       "default_crl_days = 30\npolicy = any\nunique_subject = "
                                       "no\n[any]\ncountryName = optional\norganizationName = "
                                       "optional\ncommonName = supplied\n[signer]\n"
                                       "basicConstraints = critical, CA:FALSE\nkeyUsage = "
                                       "critical, digitalSignature, nonRepudiation\n");
        sh("cd " + d +
           " && mkdir -p cadb/new && touch cadb/index.txt && echo 1000 > cadb/serial && echo 01 "
           "> cadb/crlnumber");
        auto issue = [&](const std::string& name, const std::string& extra) {
            sh("cd " + d +
               " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + name +
               ".key && openssl req -new -key " + name + ".key -subj '/O=94000123/CN=" + name +
               "' -out " + name + ".csr && openssl ca -batch -config ca.cnf -notext " +
               "-extensions signer " + extra + " -in " + name + ".csr -out " + name + ".pem");
        };
        issue("expired", "-startdate 20200101000000Z -enddate 20210101000000Z");
        issue("revoked", "");
        sh("cd " + d + " && openssl ca -batch -config ca.cnf -gencrl -out crl-empty.pem");
        sh("cd " + d + " && openssl ca -batch -config ca.cnf -revoke revoked.pem && openssl ca " +
           "-batch -config ca.cnf -revoke " + pki + "/gvbm-TOAN.pem && openssl ca -batch " +
           "-config ca.cnf -gencrl -out crl-full.pem");
        sh("cd " + d +
           " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
           "-subj /CN=Other-CA -keyout other-ca.key -out other-ca.pem -days 365 && openssl "
           "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key && openssl req "
           "-new -key other.key -subj '/O=94000123/CN=other' -out other.csr && openssl x509 -req "
           "-in other.csr -CA other-ca.pem -CAkey other-ca.key -set_serial 9 -days 365 -extfile "
           "ca.cnf -extensions signer -out other.pem");
    }
    std::string pem(const std::string& name) const { return read_file(dir / (name + ".pem")); }
};

const CaDb& cadb() {
    static CaDb db;
    return db;
}

json::object teacher(Daemon& d, const std::string& session, const std::string& doc,
                     const std::string& subject, std::optional<std::string> request_id = {}) {
    auto p = sign_params(session, d.key_uri("gvbm-" + subject), "subject_teacher", doc, subject);
    if (request_id) p["request_id"] = *request_id;
    return p;
}

std::string sign_all(Daemon& d, protocol::Client& c, const std::string& session, std::string doc) {
    for (const auto& s : kSubjects)
        doc =
            std::string(c.call(M("Sign"), teacher(d, session, doc, s)).at("document").as_string());
    for (auto [key, role] :
         {std::pair{"gvcn", "homeroom_teacher"}, {"ht", "principal"}, {"truong", "school"}})
        doc = std::string(c.call(M("Sign"), sign_params(session, d.key_uri(key), role, doc))
                              .at("document")
                              .as_string());
    return doc;
}

}  // namespace

TEST_CASE("registry: all four stages with registry checks on; Verify trusted and registered") {
    Daemon d(DaemonOptions{}.with_registry());
    auto c = d.client();
    enrol_all(c);
    const auto certs = c.call(M("ListCertificates"), {{"school", kSchool}}).at("certificates");
    CHECK(certs.as_array().size() == 15);
    for (const auto& ce : certs.as_array()) CHECK(ce.at("status").as_string() == "approved");
    CHECK(c.call(M("ListAssignments"), {{"school", kSchool}, {"year", kYear}})
              .at("assignments")
              .as_array()
              .size() == 14);

    const auto session = open_session(d, c);
    const auto doc = sign_all(d, c, session, fixture());
    auto v = c.call(M("Verify"), {{"document", doc}});
    CHECK(v.at("verdict").as_string() == "valid");
    for (const auto& s : v.at("signatures").as_array()) {
        CHECK(s.at("trusted").as_bool());
        CHECK(s.at("registered").as_bool());
        CHECK(s.at("problems").as_array().empty());
    }
    auto rec = c.call(M("GetRecord"), {{"record", kFixtureRecord}}).at("record");
    CHECK(rec.at("school").as_string() == kSchool);
    CHECK(rec.at("state").as_string() == "active");
    CHECK(rec.at("issued_years").as_array().size() == 1);

    // A registry revocation later does not undo signatures made before it (judged at the time
    // hbsd's audit log recorded).
    const auto fp = std::string(certs.as_array()[0].at("fingerprint").as_string());
    // Times are whole seconds: the revocation must come in a later second than the signature.
    std::this_thread::sleep_for(1100ms);
    c.call(M("RevokeCertificate"), {{"fingerprint", fp}, {"reason", "left the school"}});
    auto v2 = c.call(M("Verify"), {{"document", doc}});
    CHECK(v2.at("verdict").as_string() == "valid");
}

TEST_CASE("registry: every PolicyViolation reason of Sign, each audited as denied") {
    Daemon d(DaemonOptions{}.with_registry());
    auto c = d.client();
    const auto session = open_session(d, c);
    const std::string doc1 = fixture_student(1), doc2 = fixture_student(2),
                      doc3 = fixture_student(3), doc4 = fixture_student(4);

    // not_registered: unknown, then registered but pending.
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, doc1, "TOAN")); }) ==
          "PolicyViolation:not_registered");
    const auto toan = person("gvbm-TOAN");
    const auto fp = enrol(c, toan, false, false);
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, doc1, "TOAN")); }) ==
          "PolicyViolation:not_registered");
    // not_assigned: approved, no role.
    c.call(M("ApproveCertificate"), {{"fingerprint", fp}});
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, doc1, "TOAN")); }) ==
          "PolicyViolation:not_assigned");
    json::object assignment{{"school", kSchool},   {"year", kYear},   {"role", "subject_teacher"},
                            {"person", toan.code}, {"class", kClass}, {"subject", "TOAN"}};
    c.call(M("AssignRole"), assignment);
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, doc1, "TOAN")); }) == "ok");
    // Unassigned again: refused again.
    c.call(M("UnassignRole"), assignment);
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, doc2, "TOAN")); }) ==
          "PolicyViolation:not_assigned");
    c.call(M("AssignRole"), assignment);

    // year_locked, then unlocked.
    c.call(M("SetYearLock"), {{"school", kSchool}, {"year", kYear}, {"locked", true}});
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, doc2, "TOAN")); }) ==
          "PolicyViolation:year_locked");
    c.call(M("SetYearLock"), {{"school", kSchool}, {"year", kYear}, {"locked", false}});
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, doc2, "TOAN")); }) == "ok");

    // wrong_key: the school seal for a subject teacher's stage.
    enrol(c, person("truong"));
    auto seal_for_teacher =
        sign_params(session, d.key_uri("truong"), "subject_teacher", doc3, std::string("TOAN"));
    CHECK(refusal([&] { c.call(M("Sign"), seal_for_teacher); }) == "PolicyViolation:wrong_key");

    // record_revoked: doc1's record exists (signed above); revocation requested.
    auto rr =
        c.call(M("RequestRevocation"), {{"record", "94000123-2024-0001"}, {"reason", "typo"}});
    CHECK(rr.at("record").at("state").as_string() == "revocation_requested");
    enrol(c, person("gvbm-NGUVAN"));
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, doc1, "NGUVAN")); }) ==
          "PolicyViolation:record_revoked");
    auto dr =
        c.call(M("DecideRevocation"),
               {{"record", "94000123-2024-0001"}, {"approved", true}, {"reference", "BGD-1"}});
    CHECK(dr.at("record").at("state").as_string() == "revoked");
    CHECK(refusal([&] {
              c.call(
                  M("DecideRevocation"),
                  {{"record", "94000123-2024-0001"}, {"approved", true}, {"reference", "BGD-1"}});
          }) == "InvalidParameter");

    // record_transferred: doc2's record handed to another school.
    auto tr =
        c.call(M("TransferRecord"), {{"record", "94000123-2024-0002"}, {"to_school", "94000999"}});
    CHECK(tr.at("record").at("school").as_string() == "94000999");
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, doc2, "NGUVAN")); }) ==
          "PolicyViolation:record_transferred");
    CHECK(refusal([&] {
              c.call(M("GetRecord"), {{"record", "94000123-2024-0099"}});
          }) == "RecordNotFound");

    // untrusted_certificate: revoked in the registry.
    c.call(M("RevokeCertificate"), {{"fingerprint", fp}, {"reason", "key lost"}});
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, doc4, "TOAN")); }) ==
          "PolicyViolation:untrusted_certificate");
    CHECK(refusal([&] {
              c.call(M("ApproveCertificate"), {{"fingerprint", fp}});
          }) == "CertificateInvalid:revoked");
    CHECK(refusal([&] {
              c.call(M("ApproveCertificate"), {{"fingerprint", std::string(64, 'a')}});
          }) == "CertificateNotFound");

    // Every refusal above is in the audit log as denied, with the document's hash only.
    const auto entries = c.call(M("GetAuditLog"), {{"limit", 1000}}).at("entries").as_array();
    std::set<std::string> denied;
    for (const auto& e : entries) {
        const auto& o = e.as_object();
        if (o.at("method").as_string() == "Sign" && o.at("outcome").as_string() == "denied") {
            const std::string detail(o.at("detail").as_string());
            for (const char* r : {"not_registered", "not_assigned", "year_locked", "wrong_key",
                                  "record_revoked", "record_transferred", "untrusted_certificate"})
                if (detail.find(r) != std::string::npos) denied.insert(r);
            CHECK(o.at("document_before").as_string().size() == 64);
        }
        CHECK(json::serialize(o).find("<HocBa") == std::string::npos);
    }
    CHECK(denied.size() == 7);
    CHECK(c.call(M("VerifyAuditLog")).at("ok").as_bool());
}

TEST_CASE("registry: administration needs admin, and the refusal is audited") {
    Daemon d(DaemonOptions{}.with_registry().grant(kNobody, R"(["sign"])"));
    CHECK(as_uid(kNobody, [&] {
              return outcome([&] {
                  auto c = d.client();
                  c.call(M("ListCertificates"));
              });
          }) == "vn.hocbaso.Signer.PermissionDenied");
    CHECK(as_uid(kNobody, [&] {
              return outcome([&] {
                  auto c = d.client();
                  c.call("vn.hocbaso.SignerAdmin.GetArchived", {{"seq", 1}});
              });
          }) == "vn.hocbaso.Signer.PermissionDenied");
    auto c = d.client();
    const auto entries = c.call(M("GetAuditLog")).at("entries").as_array();
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].at("method").as_string() == "ListCertificates");
    CHECK(entries[0].at("outcome").as_string() == "denied");
    CHECK(entries[0].at("uid").as_int64() == kNobody);
    // The extension interface is listed and described; the contract's text is unchanged.
    auto info = c.call("org.varlink.service.GetInfo");
    CHECK(json::serialize(info.at("interfaces")).find("vn.hocbaso.SignerAdmin") !=
          std::string::npos);
    auto desc = c.call("org.varlink.service.GetInterfaceDescription",
                       {{"interface", "vn.hocbaso.SignerAdmin"}});
    CHECK(std::string(desc.at("description").as_string()).find("method GetArchived") !=
          std::string::npos);
}

TEST_CASE("registry: expired, CRL-revoked and untrusted certificates at registration and signing") {
    const auto& db = cadb();
    const auto crl = (fs::path(db.dir) / "crl.pem").string();
    fs::copy_file(db.dir / "crl-empty.pem", crl, fs::copy_options::overwrite_existing);
    DaemonOptions o;
    o.with_registry();
    o.crl_files = {crl};
    Daemon d(o);
    auto c = d.client();

    auto reg = [&](const std::string& pem) {
        return refusal([&] {
            c.call(M("RegisterCertificate"), {{"certificate", pem},
                                              {"kind", "person"},
                                              {"school", kSchool},
                                              {"person", "GV099"}});
        });
    };
    CHECK(reg(db.pem("expired")) == "CertificateInvalid:expired");
    CHECK(reg(db.pem("other")) == "CertificateInvalid:untrusted");
    CHECK(reg("not a certificate") == "CertificateInvalid:unparseable");
    CHECK(reg(db.pem("revoked")) == "ok");  // the CRL in force does not list it yet

    enrol_all(c);
    const auto session = open_session(d, c);
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, fixture_student(1), "TOAN")); }) ==
          "ok");

    // The CRL that revokes gvbm-TOAN and `revoked`, loaded on SIGHUP.
    fs::copy_file(db.dir / "crl-full.pem", crl, fs::copy_options::overwrite_existing);
    ::kill(d.pid(), SIGHUP);
    std::string got;
    for (int i = 2; i < 100; ++i) {
        got = refusal([&] { c.call(M("Sign"), teacher(d, session, fixture_student(i), "TOAN")); });
        if (got != "ok") break;
        std::this_thread::sleep_for(100ms);
    }
    CHECK(got == "PolicyViolation:untrusted_certificate");
    CHECK(reg(db.pem("revoked")) == "CertificateInvalid:revoked");
    // Others stay trusted.
    CHECK(refusal([&] { c.call(M("Sign"), teacher(d, session, fixture_student(1), "NGUVAN")); }) ==
          "ok");

    // Untrusted at signing: the anchors replaced by a foreign CA (and no CRL), SIGHUP.
    fs::copy_file(db.dir / "other-ca.pem", d.dir() / "anchors" / "ca.pem",
                  fs::copy_options::overwrite_existing);
    fs::copy_file(db.dir / "crl-empty.pem", crl, fs::copy_options::overwrite_existing);
    ::kill(d.pid(), SIGHUP);
    for (int i = 0; i < 100; ++i) {
        got = refusal(
            [&] { c.call(M("Sign"), teacher(d, session, fixture_student(200 + i), "TINHOC")); });
        if (got != "ok") break;
        std::this_thread::sleep_for(100ms);
    }
    CHECK(got == "PolicyViolation:untrusted_certificate");
}

TEST_CASE("registry: hbsctl administration, records and archive") {
    Daemon d(DaemonOptions{}.with_registry());
    const auto sock = d.socket();
    const auto pem = (pki_dir() / "gvbm-TOAN.pem").string();
    auto r = run_hbsctl({"--socket", sock, "--json", "certificates", "register", pem, "--kind",
                         "person", "--school", kSchool, "--person", "GV001"});
    REQUIRE(r.code == 0);
    const auto fp = std::string(json::parse(r.out).at("certificate").at("fingerprint").as_string());
    CHECK(run_hbsctl({"--socket", sock, "certificates", "approve", fp}).code == 0);
    r = run_hbsctl({"--socket", sock, "certificates", "list"});
    CHECK(r.out.find("approved") != std::string::npos);
    CHECK(
        run_hbsctl({"--socket", sock, "assign", "--school", kSchool, "--year", kYear, "--role",
                    "subject_teacher", "--person", "GV001", "--class", kClass, "--subject", "TOAN"})
            .code == 0);
    r = run_hbsctl({"--socket", sock, "assignments", "--school", kSchool, "--year", kYear});
    CHECK(r.out.find("GV001") != std::string::npos);
    // A usage error of the store (subject without subject_teacher) is exit code 2.
    CHECK(run_hbsctl({"--socket", sock, "assign", "--school", kSchool, "--year", kYear, "--role",
                      "principal", "--person", "HT01", "--subject", "TOAN"})
              .code == 2);

    auto c = d.client();
    const auto session = open_session(d, c);
    auto signed_ = c.call(M("Sign"), teacher(d, session, fixture(), "TOAN"));
    const auto seq = signed_.at("audit_seq").as_int64();
    const auto out = (d.dir() / "fetched.xml").string();
    r = run_hbsctl({"--socket", sock, "archive", "get", std::to_string(seq), "-o", out});
    CHECK(r.code == 0);
    CHECK(read_file(out) == std::string(signed_.at("document").as_string()));
    CHECK(run_hbsctl({"--socket", sock, "archive", "get", "9999"}).code == 2);

    r = run_hbsctl({"--socket", sock, "record", "get", kFixtureRecord});
    CHECK(r.code == 0);
    CHECK(r.out.find("state active") != std::string::npos);
    CHECK(run_hbsctl({"--socket", sock, "year-lock", "--school", kSchool, "--year", kYear}).code ==
          0);
    r = run_hbsctl({"--socket", sock, "record", "request-revocation", kFixtureRecord, "--reason",
                    "wrong name"});
    CHECK(r.out.find("revocation_requested") != std::string::npos);
    r = run_hbsctl(
        {"--socket", sock, "record", "decide-revocation", kFixtureRecord, "--reference", "BGD-2"});
    CHECK(r.out.find("state active") != std::string::npos);
    CHECK(run_hbsctl(
              {"--socket", sock, "record", "transfer", kFixtureRecord, "--to-school", "94000555"})
              .code == 0);
    CHECK(run_hbsctl({"--socket", sock, "record", "get", "nope"}).code == 11);
    r = run_hbsctl({"--socket", sock, "audit", "log"});
    CHECK(r.out.find("TransferRecord") != std::string::npos);
    r = run_hbsctl({"--socket", sock, "audit", "verify"});
    CHECK(r.code == 0);
    CHECK(r.out.rfind("ok:", 0) == 0);
}

TEST_CASE(
    "registry: a certificate that has expired since it was registered is refused at signing") {
    const auto& db = cadb();
    TempDir state("hbsd-regexp-");
    DaemonOptions o;
    o.with_registry();
    o.state_dir = state.path().string();
    Daemon d(o);
    // A key with a back-dated certificate on the daemon's token, as a card would carry it.
    const std::string env = "SOFTHSM2_CONF='" + (d.dir() / "softhsm2.conf").string() + "' ";
    const std::string x = (db.dir / "expired").string();
    sh("openssl pkcs8 -topk8 -nocrypt -in '" + x + ".key' -out '" + x +
       ".p8' && openssl x509 -in '" + x + ".pem' -outform DER -out '" + x + ".der' && " + env +
       "softhsm2-util --import '" + x + ".p8' --token hbsd-test --label expired --id 50 --pin " +
       kPin + " && " + env +
       "pkcs11-tool --module " HBSD_SOFTHSM2_MODULE " --token-label hbsd-test --login --pin " +
       kPin + " --write-object '" + x + ".der' --type cert --id 50 --label expired");
    {
        // Registered and approved back when it was valid: written straight into the store, as
        // the registry would hold it (RegisterCertificate itself refuses it today).
        auto store = store::Store::open(state.path() / "hbsd.db");
        const auto c = store.register_certificate(store::certificate_der_from(db.pem("expired")),
                                                  store::CertificateKind::person, kSchool,
                                                  std::string_view("GV050"));
        store.approve_certificate(c.fingerprint);
        store.assign({kSchool, kYear, store::Role::subject_teacher, "GV050", kClass, "TOAN"});
    }
    auto c = d.client();
    const auto session = open_session(d, c);
    auto p = sign_params(session, d.key_uri("expired"), "subject_teacher", fixture(),
                         std::string("TOAN"));
    const auto e = error_of([&] { c.call(M("Sign"), p); });
    CHECK(e.code() == Errc::PolicyViolation);
    CHECK(e.parameters().at("reason").as_string() == "untrusted_certificate");
    CHECK(std::string(e.parameters().at("detail").as_string()).find("expired") !=
          std::string::npos);
}
