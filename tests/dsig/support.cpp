#include "support.hpp"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sys/file.h>
#include <unistd.h>

#include <fcntl.h>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "policies/order.hpp"

namespace hbsd::test {

const std::vector<std::string> kSubjects{"TOAN", "NGUVAN",    "TIENGANH", "GDCD",
                                         "LSDL", "KHTN",      "CONGNGHE", "TINHOC",
                                         "GDTC", "NGHETHUAT", "HDTNHN",   "GDDP"};

const std::string& fixture() {
    static const std::string f = read_file(HBSD_FIXTURE);
    return f;
}

std::filesystem::path pki_dir() {
    static const std::filesystem::path dir = [] {
        std::filesystem::path d = HBSD_DSIG_PKI_DIR;
        if (!std::filesystem::exists(d / "people.tsv")) {
            // Not made by the ctest fixture (binary run by hand): make it, once, under a lock.
            std::filesystem::create_directories(d.parent_path());
            std::string lock = d.string() + ".lock";
            int fd = ::open(lock.c_str(), O_CREAT | O_RDWR, 0600);
            if (fd >= 0) ::flock(fd, LOCK_EX);
            if (!std::filesystem::exists(d / "people.tsv")) {
                std::string cmd = std::string("'") + HBSD_TEST_SUPPORT_DIR + "/make-test-pki' '" +
                                  d.string() + "' >/dev/null 2>&1";
                if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make-test-pki failed");
            }
            if (fd >= 0) ::close(fd);
        }
        return d;
    }();
    return dir;
}

namespace {

struct PKeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PKeyPtr = std::shared_ptr<EVP_PKEY>;

PKeyPtr load_key(const std::filesystem::path& p) {
    std::unique_ptr<FILE, decltype(&fclose)> f(fopen(p.c_str(), "r"), fclose);
    if (!f) throw std::runtime_error("cannot open " + p.string());
    EVP_PKEY* k = PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr);
    if (k == nullptr) throw std::runtime_error("cannot read key " + p.string());
    return PKeyPtr(k, PKeyFree{});
}

std::vector<unsigned char> load_cert_der(const std::filesystem::path& p) {
    std::unique_ptr<FILE, decltype(&fclose)> f(fopen(p.c_str(), "r"), fclose);
    if (!f) throw std::runtime_error("cannot open " + p.string());
    X509* x = PEM_read_X509(f.get(), nullptr, nullptr, nullptr);
    if (x == nullptr) throw std::runtime_error("cannot read cert " + p.string());
    unsigned char* der = nullptr;
    int n = i2d_X509(x, &der);
    X509_free(x);
    std::vector<unsigned char> out(der, der + n);
    OPENSSL_free(der);
    return out;
}

// What a token does: RSA PKCS#1 v1.5 over DigestInfo(SHA-256), or ECDSA with r||s output.
std::vector<unsigned char> raw_sign(EVP_PKEY* key, std::span<const unsigned char> digest) {
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key, nullptr),
                                                                    EVP_PKEY_CTX_free);
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1) throw std::runtime_error("sign_init");
    bool rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
    if (rsa) EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
    EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256());
    size_t len = 0;
    EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size());
    std::vector<unsigned char> sig(len);
    if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()) != 1)
        throw std::runtime_error("EVP_PKEY_sign");
    sig.resize(len);
    if (rsa) return sig;
    const unsigned char* p = sig.data();
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    const int half = (EVP_PKEY_get_bits(key) + 7) / 8;
    std::vector<unsigned char> rs(2 * half);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), rs.data(), half);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), rs.data() + half, half);
    ECDSA_SIG_free(es);
    return rs;
}

}  // namespace

dsig::Signer signer(const std::string& name) {
    PKeyPtr key = load_key(pki_dir() / (name + ".key"));
    dsig::Signer s;
    s.certificate_der = load_cert_der(pki_dir() / (name + ".pem"));
    s.sign_digest = [key](std::span<const unsigned char> d) { return raw_sign(key.get(), d); };
    return s;
}

dsig::Signer stage_signer(dsig::Stage stage, const std::string& subject) {
    static std::map<std::string, dsig::Signer> cache;
    std::string name;
    switch (stage) {
        case dsig::Stage::subject_teacher:
            name = "gvbm-" + subject;
            break;
        case dsig::Stage::homeroom_teacher:
            name = "gvcn";
            break;
        case dsig::Stage::principal:
            name = "ht";
            break;
        case dsig::Stage::school:
            name = "truong";
            break;
    }
    auto it = cache.find(name);
    if (it == cache.end()) it = cache.emplace(name, signer(name)).first;
    return it->second;
}

std::chrono::system_clock::time_point fixed_time() {
    return std::chrono::sys_days{std::chrono::year{2025} / 5 / 30} + std::chrono::hours{8};
}

std::string sign_year(const std::string& xml, const std::string& year,
                      std::optional<dsig::Stage> stop_before, const std::string& skip_subject) {
    using dsig::Stage;
    auto doc = dsig::Document::parse(xml);
    auto stop = [&](Stage s) { return stop_before && *stop_before <= s; };
    if (stop(Stage::subject_teacher)) return doc.serialize();
    const std::vector<std::string> subjects =
        doc.year(year)->subjects;  // add_signature updates years()
    for (const auto& s : subjects) {
        if (s == skip_subject) continue;
        policies::check_order(doc, Stage::subject_teacher, year, s);
        doc.add_signature(Stage::subject_teacher, year, s, stage_signer(Stage::subject_teacher, s),
                          fixed_time());
    }
    for (Stage st : {Stage::homeroom_teacher, Stage::principal, Stage::school}) {
        if (stop(st)) break;
        policies::check_order(doc, st, year, std::nullopt);
        doc.add_signature(st, year, std::nullopt, stage_signer(st), fixed_time());
    }
    return doc.serialize();
}

std::string sign_year_by_requests(const std::string& xml, const std::string& year) {
    using dsig::Stage;
    std::string out = xml;
    const std::vector<std::string> subjects = dsig::Document::parse(xml).year(year)->subjects;
    auto one = [&](Stage st, std::optional<std::string> subject) {
        auto doc = dsig::Document::parse(out);
        policies::check_order(doc, st, year, subject);
        doc.add_signature(st, year, subject, stage_signer(st, subject.value_or("")), fixed_time());
        out = doc.serialize();
    };
    for (const auto& s : subjects) one(Stage::subject_teacher, s);
    for (Stage st : {Stage::homeroom_teacher, Stage::principal, Stage::school})
        one(st, std::nullopt);
    return out;
}

std::string hand_written() {
    std::string xml = replace_once(fixture(), R"(<?xml version="1.0" encoding="UTF-8"?>)",
                                   "<?xml version='1.0' encoding='utf-8'?>");
    xml = replace_once(xml, "Ten=\"To\xC3\xA1n\"", "Ten='To&#225;n'");
    std::string crlf;
    for (char c : xml) {
        if (c == '\n') crlf += '\r';
        crlf += c;
    }
    return crlf;
}

const std::string& fully_signed() {
    static const std::string s = sign_year(fixture(), kYear);
    return s;
}

std::string with_second_year(const std::string& xml) {
    const std::string& f = fixture();
    auto b = f.find("<NamHoc ");
    auto e = f.find("</NamHoc>");
    std::string year = f.substr(b, e + 9 - b);
    for (auto [from, to] : {std::pair<std::string, std::string>{kYear, kYear2},
                            {"Lop=\"6A1\"", "Lop=\"7A1\""},
                            {"Khoi=\"6\"", "Khoi=\"7\""}}) {
        for (std::size_t p = year.find(from); p != std::string::npos;
             p = year.find(from, p + to.size()))
            year.replace(p, from.size(), to);
    }
    auto end = xml.rfind("</HocBa>");
    return xml.substr(0, end) + "  " + year + "\n" + xml.substr(end);
}

std::string replace_once(std::string s, std::string_view from, std::string_view to) {
    auto p = s.find(from);
    if (p == std::string::npos)
        throw std::runtime_error("replace_once: not found: " + std::string(from));
    s.replace(p, from.size(), to);
    return s;
}

std::string signature_text(const std::string& xml, const std::string& id) {
    auto idp = xml.find("Id=\"" + id + "\"");
    if (idp == std::string::npos) throw std::runtime_error("no signature " + id);
    auto b = xml.rfind("<ds:Signature", idp);
    auto e = xml.find("</ds:Signature>", idp);
    return xml.substr(b, e + 15 - b);
}

std::string sig_id(dsig::Stage stage, const std::string& year, const std::string& subject) {
    std::string tail = std::string(kRecord) + "-" + year;
    switch (stage) {
        case dsig::Stage::subject_teacher:
            return "SIG-GVBM-" + tail + "-" + subject;
        case dsig::Stage::homeroom_teacher:
            return "SIG-GVCN-" + tail;
        case dsig::Stage::principal:
            return "SIG-HT-" + tail;
        case dsig::Stage::school:
            return "SIG-TRUONG-" + tail;
    }
    return {};
}

std::string param(const Error& e, const char* key) {
    const auto* v = e.parameters().if_contains(key);
    if (v == nullptr) return {};
    if (v->is_string()) return std::string(v->as_string());
    return boost::json::serialize(*v);
}

}  // namespace hbsd::test
