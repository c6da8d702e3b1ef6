#include "protocol/error.hpp"

#include "protocol/hex.hpp"

#include <openssl/rand.h>
#include <boost/json/serialize.hpp>

#include <array>
#include <utility>

namespace hbsd {
namespace {

struct Name {
    Errc code;
    std::string_view name;
};

constexpr std::array kNames{
    Name{Errc::PermissionDenied, "vn.hocbaso.Signer.PermissionDenied"},
    Name{Errc::InvalidDocument, "vn.hocbaso.Signer.InvalidDocument"},
    Name{Errc::DocumentTooLarge, "vn.hocbaso.Signer.DocumentTooLarge"},
    Name{Errc::PolicyViolation, "vn.hocbaso.Signer.PolicyViolation"},
    Name{Errc::TokenNotFound, "vn.hocbaso.Signer.TokenNotFound"},
    Name{Errc::TokenNotPresent, "vn.hocbaso.Signer.TokenNotPresent"},
    Name{Errc::KeyNotFound, "vn.hocbaso.Signer.KeyNotFound"},
    Name{Errc::PinIncorrect, "vn.hocbaso.Signer.PinIncorrect"},
    Name{Errc::PinLocked, "vn.hocbaso.Signer.PinLocked"},
    Name{Errc::SessionNotFound, "vn.hocbaso.Signer.SessionNotFound"},
    Name{Errc::SessionExpired, "vn.hocbaso.Signer.SessionExpired"},
    Name{Errc::CertificateNotFound, "vn.hocbaso.Signer.CertificateNotFound"},
    Name{Errc::CertificateInvalid, "vn.hocbaso.Signer.CertificateInvalid"},
    Name{Errc::RecordNotFound, "vn.hocbaso.Signer.RecordNotFound"},
    Name{Errc::Busy, "vn.hocbaso.Signer.Busy"},
    Name{Errc::Internal, "vn.hocbaso.Signer.Internal"},
    Name{Errc::MethodNotFound, "org.varlink.service.MethodNotFound"},
    Name{Errc::InvalidParameter, "org.varlink.service.InvalidParameter"},
    Name{Errc::InterfaceNotFound, "org.varlink.service.InterfaceNotFound"},
    Name{Errc::ExpectedMore, "org.varlink.service.ExpectedMore"},
};

std::string opt_json(const boost::json::object& o) {
    std::string s;
    for (const auto& [k, v] : o) {
        if (!s.empty()) s += ", ";
        s += std::string(k) + "=" + boost::json::serialize(v);
    }
    return s;
}

}  // namespace

std::string_view error_name(Errc code) noexcept {
    for (const auto& n : kNames)
        if (n.code == code) return n.name;
    return "vn.hocbaso.Signer.Internal";
}

std::optional<Errc> error_from_name(std::string_view name) noexcept {
    for (const auto& n : kNames)
        if (n.name == name) return n.code;
    return std::nullopt;
}

Error::Error(Errc code, boost::json::object parameters, std::string detail)
    : code_(code), parameters_(std::move(parameters)), detail_(std::move(detail)) {
    what_ = std::string(error_name(code_));
    if (!parameters_.empty()) what_ += " (" + opt_json(parameters_) + ")";
    if (!detail_.empty()) what_ += ": " + detail_;
}

Error Error::permission_denied(long uid, std::string_view method) {
    return {Errc::PermissionDenied, {{"uid", uid}, {"method", method}}};
}
Error Error::invalid_document(std::string_view reason, std::optional<long> line) {
    boost::json::object p{{"reason", reason}};
    if (line) p["line"] = *line;
    return {Errc::InvalidDocument, std::move(p)};
}
Error Error::document_too_large(long long size, long long limit) {
    return {Errc::DocumentTooLarge, {{"size", size}, {"limit", limit}}};
}
Error Error::policy(std::string_view reason, std::string_view detail) {
    return {Errc::PolicyViolation, {{"reason", reason}, {"detail", detail}}};
}
Error Error::token_not_found(std::string_view token) {
    return {Errc::TokenNotFound, {{"token", token}}};
}
Error Error::token_not_present(std::string_view token) {
    return {Errc::TokenNotPresent, {{"token", token}}};
}
Error Error::key_not_found(std::string_view key) {
    return {Errc::KeyNotFound, {{"key", key}}};
}
Error Error::pin_incorrect(std::optional<long> retries_left) {
    boost::json::object p;
    if (retries_left) p["retries_left"] = *retries_left;
    return {Errc::PinIncorrect, std::move(p)};
}
Error Error::pin_locked() {
    return {Errc::PinLocked, {}};
}
Error Error::session_not_found(std::string_view session) {
    return {Errc::SessionNotFound, {{"session", session}}};
}
Error Error::session_expired(std::string_view session) {
    return {Errc::SessionExpired, {{"session", session}}};
}
Error Error::certificate_not_found(std::string_view fingerprint) {
    return {Errc::CertificateNotFound, {{"fingerprint", fingerprint}}};
}
Error Error::certificate_invalid(std::string_view reason) {
    return {Errc::CertificateInvalid, {{"reason", reason}}};
}
Error Error::record_not_found(std::string_view record) {
    return {Errc::RecordNotFound, {{"record", record}}};
}
Error Error::busy(long retry_after_ms) {
    return {Errc::Busy, {{"retry_after_ms", retry_after_ms}}};
}
Error Error::internal(std::string detail) {
    // A random reference ties the caller's report to the log line without revealing the cause.
    std::array<unsigned char, 6> r{};
    RAND_bytes(r.data(), static_cast<int>(r.size()));
    return {Errc::Internal, {{"reference", to_hex(r)}}, std::move(detail)};
}
Error Error::invalid_parameter(std::string_view parameter) {
    return {Errc::InvalidParameter, {{"parameter", parameter}}};
}
Error Error::method_not_found(std::string_view method) {
    return {Errc::MethodNotFound, {{"method", method}}};
}

}  // namespace hbsd
