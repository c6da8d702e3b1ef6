// The certificate registry: what an admin registered, approved or revoked.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <boost/json.hpp>
#include <cctype>
#include <ctime>
#include <memory>

#include "protocol/error.hpp"
#include "protocol/hex.hpp"
#include "store/impl.hpp"
#include "store/text.hpp"

namespace hbsd::store {
namespace {

struct X509Free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct BnFree {
    void operator()(BIGNUM* b) const noexcept { BN_free(b); }
};
struct OsslFree {
    void operator()(char* p) const noexcept { OPENSSL_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

constexpr const char* kColumns =
    "fingerprint, der, subject, issuer, serial, not_before, not_after, kind, school, person, "
    "status, revoke_reason, revoked_at, registered_at";

std::string name_text(const X509_NAME* name) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (!bio) throw Error::internal("openssl: BIO_new");
    // RFC 2253 order and escaping, but UTF-8 kept as is: Vietnamese names stay readable.
    const unsigned long flags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
    if (X509_NAME_print_ex(bio.get(), name, 0, flags) < 0)
        throw Error::certificate_invalid("unparseable");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n > 0 ? n : 0));
}

std::string time_text(const ASN1_TIME* t) {
    std::tm tm{};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) throw Error::certificate_invalid("unparseable");
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string serial_text(const ASN1_INTEGER* serial) {
    std::unique_ptr<BIGNUM, BnFree> bn(ASN1_INTEGER_to_BN(serial, nullptr));
    if (!bn) throw Error::certificate_invalid("unparseable");
    if (BN_is_zero(bn.get())) return "0";
    std::unique_ptr<char, OsslFree> hex(BN_bn2hex(bn.get()));
    if (!hex) throw Error::internal("openssl: BN_bn2hex");
    std::string s(hex.get());
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto first = s.find_first_not_of("0-");
    const bool negative = !s.empty() && s[0] == '-';
    return (negative ? "-" : "") + s.substr(first);
}

Certificate parse(std::span<const unsigned char> der) {
    const unsigned char* p = der.data();
    X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    // Trailing bytes would make the fingerprint cover more than the certificate.
    if (!x || p != der.data() + der.size()) throw Error::certificate_invalid("unparseable");
    Certificate c;
    c.der.assign(der.begin(), der.end());
    c.fingerprint = sha256_hex(der);
    c.subject = name_text(X509_get_subject_name(x.get()));
    c.issuer = name_text(X509_get_issuer_name(x.get()));
    c.serial = serial_text(X509_get0_serialNumber(x.get()));
    c.not_before = time_text(X509_get0_notBefore(x.get()));
    c.not_after = time_text(X509_get0_notAfter(x.get()));
    return c;
}

Certificate read_row(const Statement& st) {
    Certificate c;
    c.fingerprint = st.text(0);
    c.der = st.blob(1);
    c.subject = st.text(2);
    c.issuer = st.text(3);
    c.serial = st.text(4);
    c.not_before = st.text(5);
    c.not_after = st.text(6);
    c.kind = st.text(7) == "school" ? CertificateKind::school : CertificateKind::person;
    c.school = st.text(8);
    c.person = st.optional_text(9);
    const std::string status = st.text(10);
    c.status = status == "approved"  ? CertificateStatus::approved
               : status == "revoked" ? CertificateStatus::revoked
                                     : CertificateStatus::pending;
    c.revoke_reason = st.optional_text(11);
    c.revoked_at = st.optional_text(12);
    c.registered_at = st.text(13);
    return c;
}

std::optional<Certificate> find(Database& db, std::string_view fingerprint) {
    auto st =
        db.prepare(std::string("SELECT ") + kColumns + " FROM certificates WHERE fingerprint = ?1");
    st.bind(1, fingerprint);
    if (!st.step()) return std::nullopt;
    return read_row(st);
}

Certificate get(Database& db, std::string_view fingerprint) {
    auto c = find(db, fingerprint);
    if (!c) throw Error::certificate_not_found(fingerprint);
    return std::move(*c);
}

}  // namespace

std::string_view to_string(CertificateKind kind) noexcept {
    return kind == CertificateKind::school ? "school" : "person";
}

std::string_view to_string(CertificateStatus status) noexcept {
    switch (status) {
        case CertificateStatus::pending:
            return "pending";
        case CertificateStatus::approved:
            return "approved";
        case CertificateStatus::revoked:
            return "revoked";
    }
    return "pending";
}

std::optional<CertificateKind> certificate_kind_from_string(std::string_view s) noexcept {
    if (s == "person") return CertificateKind::person;
    if (s == "school") return CertificateKind::school;
    return std::nullopt;
}

boost::json::object Certificate::to_json() const {
    return {{"fingerprint", fingerprint},
            {"subject", subject},
            {"issuer", issuer},
            {"serial", serial},
            {"not_before", not_before},
            {"not_after", not_after},
            {"kind", to_string(kind)},
            {"school", school},
            {"person", person ? boost::json::value(*person) : boost::json::value(nullptr)},
            {"status", to_string(status)},
            {"registered_at", registered_at}};
}

Bytes certificate_der_from(std::string_view pem_or_der) {
    if (pem_or_der.find("-----BEGIN") != std::string_view::npos) {
        std::unique_ptr<BIO, BioFree> bio(
            BIO_new_mem_buf(pem_or_der.data(), static_cast<int>(pem_or_der.size())));
        if (!bio) throw Error::internal("openssl: BIO_new_mem_buf");
        X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        if (!x) throw Error::certificate_invalid("unparseable");
        unsigned char* out = nullptr;
        const int n = i2d_X509(x.get(), &out);
        if (n <= 0) throw Error::certificate_invalid("unparseable");
        Bytes der(out, out + n);
        OPENSSL_free(out);
        return der;
    }
    Bytes der(pem_or_der.begin(), pem_or_der.end());
    parse(der);  // validates
    return der;
}

Certificate Store::register_certificate(std::span<const unsigned char> der, CertificateKind kind,
                                        std::string_view school,
                                        std::optional<std::string_view> person) {
    if (school.empty()) throw Error::invalid_parameter("school");
    if (kind == CertificateKind::person && (!person || person->empty()))
        throw Error::invalid_parameter("person");
    if (kind == CertificateKind::school && person) throw Error::invalid_parameter("person");
    Certificate c = parse(der);
    c.kind = kind;
    c.school = school;
    if (person) c.person = std::string(*person);
    c.status = CertificateStatus::pending;
    c.registered_at = now_rfc3339();

    std::lock_guard lock(impl_->mutex);
    auto& db = impl_->db;
    Transaction tx(db);
    if (auto existing = find(db, c.fingerprint)) {
        if (existing->kind != c.kind || existing->school != c.school ||
            existing->person != c.person)
            throw Error::invalid_parameter("certificate");
        return std::move(*existing);
    }
    auto st = db.prepare(
        "INSERT INTO certificates (fingerprint, der, subject, issuer, serial, not_before, "
        "not_after, kind, school, person, status, registered_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11)");
    st.bind(1, c.fingerprint).bind_blob(2, c.der).bind(3, c.subject).bind(4, c.issuer);
    st.bind(5, c.serial).bind(6, c.not_before).bind(7, c.not_after).bind(8, to_string(kind));
    st.bind(9, c.school).bind(10, c.person).bind(11, c.registered_at);
    st.run();
    tx.commit();
    return c;
}

Certificate Store::approve_certificate(std::string_view fingerprint) {
    std::lock_guard lock(impl_->mutex);
    auto& db = impl_->db;
    Transaction tx(db);
    Certificate c = get(db, fingerprint);
    if (c.status == CertificateStatus::revoked) throw Error::certificate_invalid("revoked");
    if (c.status == CertificateStatus::pending) {
        db.prepare("UPDATE certificates SET status = 'approved' WHERE fingerprint = ?1")
            .bind(1, fingerprint)
            .run();
        c.status = CertificateStatus::approved;
    }
    tx.commit();
    return c;
}

Certificate Store::revoke_certificate(std::string_view fingerprint, std::string_view reason) {
    std::lock_guard lock(impl_->mutex);
    auto& db = impl_->db;
    Transaction tx(db);
    Certificate c = get(db, fingerprint);
    if (c.status != CertificateStatus::revoked) {
        c.status = CertificateStatus::revoked;
        c.revoke_reason = std::string(reason);
        c.revoked_at = now_rfc3339();
        db.prepare(
              "UPDATE certificates SET status = 'revoked', revoke_reason = ?2, revoked_at = ?3 "
              "WHERE fingerprint = ?1")
            .bind(1, fingerprint)
            .bind(2, *c.revoke_reason)
            .bind(3, *c.revoked_at)
            .run();
    }
    tx.commit();
    return c;
}

Certificate Store::get_certificate(std::string_view fingerprint) const {
    std::lock_guard lock(impl_->mutex);
    return get(impl_->db, fingerprint);
}

std::optional<Certificate> Store::find_certificate(std::string_view fingerprint) const {
    std::lock_guard lock(impl_->mutex);
    return find(impl_->db, fingerprint);
}

std::vector<Certificate> Store::list_certificates(std::optional<std::string_view> school) const {
    std::lock_guard lock(impl_->mutex);
    auto st = impl_->db.prepare(std::string("SELECT ") + kColumns +
                                " FROM certificates WHERE ?1 IS NULL OR school = ?1 "
                                "ORDER BY rowid");
    if (school)
        st.bind(1, *school);
    else
        st.bind_null(1);
    std::vector<Certificate> out;
    while (st.step()) out.push_back(read_row(st));
    return out;
}

}  // namespace hbsd::store
