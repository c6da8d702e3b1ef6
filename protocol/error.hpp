// The one error type of hbsd. Its codes are the error names of the wire contract
// (../shared/protocol/vn.hocbaso.Signer.varlink) plus the standard Varlink errors, so that
// any layer (hsm/, dsig/, policies/, store/) can raise exactly what the caller will see.
#pragma once

#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace hbsd {

enum class Errc {
    // vn.hocbaso.Signer
    PermissionDenied,
    InvalidDocument,
    DocumentTooLarge,
    PolicyViolation,
    TokenNotFound,
    TokenNotPresent,
    KeyNotFound,
    PinIncorrect,
    PinLocked,
    SessionNotFound,
    SessionExpired,
    CertificateNotFound,
    CertificateInvalid,
    RecordNotFound,
    Busy,
    Internal,
    // org.varlink.service
    MethodNotFound,
    InvalidParameter,
    InterfaceNotFound,
    ExpectedMore,
};

// Fully qualified wire name, e.g. "vn.hocbaso.Signer.PolicyViolation".
std::string_view error_name(Errc code) noexcept;
// Inverse of error_name; nullopt for a name the contract does not know.
std::optional<Errc> error_from_name(std::string_view name) noexcept;

class Error : public std::exception {
public:
    // `detail` is for logs only and must never hold a PIN, key material or a document body.
    Error(Errc code, boost::json::object parameters, std::string detail = {});

    Errc code() const noexcept { return code_; }
    const boost::json::object& parameters() const noexcept { return parameters_; }
    const std::string& detail() const noexcept { return detail_; }
    const char* what() const noexcept override { return what_.c_str(); }

    // Constructors named after the contract's error lines, with their fields.
    static Error permission_denied(long uid, std::string_view method);
    static Error invalid_document(std::string_view reason, std::optional<long> line = {});
    static Error document_too_large(long long size, long long limit);
    static Error policy(std::string_view reason, std::string_view detail);
    static Error token_not_found(std::string_view token);
    static Error token_not_present(std::string_view token);
    static Error key_not_found(std::string_view key);
    static Error pin_incorrect(std::optional<long> retries_left);
    static Error pin_locked();
    static Error session_not_found(std::string_view session);
    static Error session_expired(std::string_view session);
    static Error certificate_not_found(std::string_view fingerprint);
    static Error certificate_invalid(std::string_view reason);
    static Error record_not_found(std::string_view record);
    static Error busy(long retry_after_ms);
    // `reference` is what the caller can quote to an admin; `detail` goes to the log.
    static Error internal(std::string detail);
    static Error invalid_parameter(std::string_view parameter);
    static Error method_not_found(std::string_view method);

private:
    Errc code_;
    boost::json::object parameters_;
    std::string detail_;
    std::string what_;
};

}  // namespace hbsd
