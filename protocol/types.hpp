// The record types of vn.hocbaso.Signer as C++ values, with their JSON mapping (Boost.JSON
// value_from / value_to). Optional fields are omitted from the JSON when empty; on input a
// missing field and null are the same.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hbsd::protocol {

struct Token {
    std::string uri, label, manufacturer, model, serial;
    bool present = false;
    std::optional<std::string> reader;
    bool logged_in = false;
};

struct Key {
    std::string uri, label;
    std::string algorithm;  // rsa | ec
    std::int64_t bits = 0;
    std::optional<std::string> certificate;  // PEM
    std::optional<std::string> fingerprint;
};

struct SignatureInfo {
    std::string id;
    std::string role;  // subject_teacher | homeroom_teacher | principal | school
    std::optional<std::string> subject;
    std::string year, signer, fingerprint;
    std::optional<std::string> signing_time;
    bool valid = false, trusted = false, registered = false, in_order = false;
    std::vector<std::string> problems;
};

struct YearStatus {
    std::string year, school, class_;  // "class" on the wire
    std::string stage;                 // none | subject_teacher | ... | school
    std::vector<std::string> missing_subjects;
};

struct BatchItem {
    std::string document;
    std::optional<std::string> request_id;
};

struct BatchResult {
    std::optional<std::string> document;
    std::optional<SignatureInfo> signature;
    std::optional<std::int64_t> audit_seq;
    std::optional<std::string> error;
    std::optional<boost::json::object> error_parameters;
};

struct VerifyResult {
    std::string verdict;  // valid | invalid | incomplete
    std::string record;
    std::vector<YearStatus> years;
    std::vector<SignatureInfo> signatures;
};

#define HBSD_PROTOCOL_JSON(T)                                                        \
    void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const T& x); \
    T tag_invoke(boost::json::value_to_tag<T>, const boost::json::value& v);
HBSD_PROTOCOL_JSON(Token)
HBSD_PROTOCOL_JSON(Key)
HBSD_PROTOCOL_JSON(SignatureInfo)
HBSD_PROTOCOL_JSON(YearStatus)
HBSD_PROTOCOL_JSON(BatchItem)
HBSD_PROTOCOL_JSON(BatchResult)
HBSD_PROTOCOL_JSON(VerifyResult)
#undef HBSD_PROTOCOL_JSON

// Convenience: the JSON object of a record type.
template <class T>
boost::json::object to_object(const T& x) {
    return boost::json::value_from(x).as_object();
}

}  // namespace hbsd::protocol
