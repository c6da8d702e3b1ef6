#include "protocol/types.hpp"

#include <stdexcept>

namespace hbsd::protocol {
namespace json = boost::json;

namespace {

// Input helpers: a record that lacks a required field or has the wrong type is a protocol
// error of the peer; value_to throws, and the client reports it as a malformed reply.
const json::object& obj(const json::value& v) {
    return v.as_object();
}

std::string str(const json::object& o, std::string_view k) {
    return std::string(o.at(k).as_string());
}
std::optional<std::string> opt_str(const json::object& o, std::string_view k) {
    const auto* v = o.if_contains(k);
    if (!v || v->is_null()) return std::nullopt;
    return std::string(v->as_string());
}
bool boolean(const json::object& o, std::string_view k) {
    return o.at(k).as_bool();
}
std::int64_t integer(const json::object& o, std::string_view k) {
    return o.at(k).to_number<std::int64_t>();
}
std::optional<std::int64_t> opt_int(const json::object& o, std::string_view k) {
    const auto* v = o.if_contains(k);
    if (!v || v->is_null()) return std::nullopt;
    return v->to_number<std::int64_t>();
}
std::vector<std::string> strings(const json::object& o, std::string_view k) {
    std::vector<std::string> out;
    for (const auto& e : o.at(k).as_array()) out.emplace_back(e.as_string());
    return out;
}

template <class T>
void put_opt(json::object& o, std::string_view k, const std::optional<T>& x) {
    if (x) o[k] = json::value_from(*x);
}

template <class T>
std::vector<T> list(const json::object& o, std::string_view k) {
    return json::value_to<std::vector<T>>(o.at(k));
}

}  // namespace

void tag_invoke(json::value_from_tag, json::value& v, const Token& x) {
    json::object o{{"uri", x.uri},
                   {"label", x.label},
                   {"manufacturer", x.manufacturer},
                   {"model", x.model},
                   {"serial", x.serial},
                   {"present", x.present},
                   {"logged_in", x.logged_in}};
    put_opt(o, "reader", x.reader);
    v = std::move(o);
}
Token tag_invoke(json::value_to_tag<Token>, const json::value& v) {
    const auto& o = obj(v);
    return {str(o, "uri"),        str(o, "label"),        str(o, "manufacturer"),
            str(o, "model"),      str(o, "serial"),       boolean(o, "present"),
            opt_str(o, "reader"), boolean(o, "logged_in")};
}

void tag_invoke(json::value_from_tag, json::value& v, const Key& x) {
    json::object o{
        {"uri", x.uri}, {"label", x.label}, {"algorithm", x.algorithm}, {"bits", x.bits}};
    put_opt(o, "certificate", x.certificate);
    put_opt(o, "fingerprint", x.fingerprint);
    v = std::move(o);
}
Key tag_invoke(json::value_to_tag<Key>, const json::value& v) {
    const auto& o = obj(v);
    return {str(o, "uri"),      str(o, "label"),           str(o, "algorithm"),
            integer(o, "bits"), opt_str(o, "certificate"), opt_str(o, "fingerprint")};
}

void tag_invoke(json::value_from_tag, json::value& v, const SignatureInfo& x) {
    json::object o{{"id", x.id},
                   {"role", x.role},
                   {"year", x.year},
                   {"signer", x.signer},
                   {"fingerprint", x.fingerprint},
                   {"valid", x.valid},
                   {"trusted", x.trusted},
                   {"registered", x.registered},
                   {"in_order", x.in_order},
                   {"problems", json::value_from(x.problems)}};
    put_opt(o, "subject", x.subject);
    put_opt(o, "signing_time", x.signing_time);
    v = std::move(o);
}
SignatureInfo tag_invoke(json::value_to_tag<SignatureInfo>, const json::value& v) {
    const auto& o = obj(v);
    SignatureInfo s;
    s.id = str(o, "id");
    s.role = str(o, "role");
    s.subject = opt_str(o, "subject");
    s.year = str(o, "year");
    s.signer = str(o, "signer");
    s.fingerprint = str(o, "fingerprint");
    s.signing_time = opt_str(o, "signing_time");
    s.valid = boolean(o, "valid");
    s.trusted = boolean(o, "trusted");
    s.registered = boolean(o, "registered");
    s.in_order = boolean(o, "in_order");
    s.problems = strings(o, "problems");
    return s;
}

void tag_invoke(json::value_from_tag, json::value& v, const YearStatus& x) {
    v = json::object{{"year", x.year},
                     {"school", x.school},
                     {"class", x.class_},
                     {"stage", x.stage},
                     {"missing_subjects", json::value_from(x.missing_subjects)}};
}
YearStatus tag_invoke(json::value_to_tag<YearStatus>, const json::value& v) {
    const auto& o = obj(v);
    return {str(o, "year"), str(o, "school"), str(o, "class"), str(o, "stage"),
            strings(o, "missing_subjects")};
}

void tag_invoke(json::value_from_tag, json::value& v, const BatchItem& x) {
    json::object o{{"document", x.document}};
    put_opt(o, "request_id", x.request_id);
    v = std::move(o);
}
BatchItem tag_invoke(json::value_to_tag<BatchItem>, const json::value& v) {
    const auto& o = obj(v);
    return {str(o, "document"), opt_str(o, "request_id")};
}

void tag_invoke(json::value_from_tag, json::value& v, const BatchResult& x) {
    json::object o;
    put_opt(o, "document", x.document);
    put_opt(o, "signature", x.signature);
    put_opt(o, "audit_seq", x.audit_seq);
    put_opt(o, "error", x.error);
    if (x.error_parameters) o["error_parameters"] = *x.error_parameters;
    v = std::move(o);
}
BatchResult tag_invoke(json::value_to_tag<BatchResult>, const json::value& v) {
    const auto& o = obj(v);
    BatchResult r;
    r.document = opt_str(o, "document");
    if (const auto* s = o.if_contains("signature"); s && !s->is_null())
        r.signature = json::value_to<SignatureInfo>(*s);
    r.audit_seq = opt_int(o, "audit_seq");
    r.error = opt_str(o, "error");
    if (const auto* p = o.if_contains("error_parameters"); p && !p->is_null())
        r.error_parameters = p->as_object();
    return r;
}

void tag_invoke(json::value_from_tag, json::value& v, const VerifyResult& x) {
    v = json::object{{"verdict", x.verdict},
                     {"record", x.record},
                     {"years", json::value_from(x.years)},
                     {"signatures", json::value_from(x.signatures)}};
}
VerifyResult tag_invoke(json::value_to_tag<VerifyResult>, const json::value& v) {
    const auto& o = obj(v);
    return {str(o, "verdict"), str(o, "record"), list<YearStatus>(o, "years"),
            list<SignatureInfo>(o, "signatures")};
}

}  // namespace hbsd::protocol
