// Helpers of the registry tests: the test PKI's people (tests/support/make-test-pki's
// people.tsv) registered, approved and assigned through the socket, as an admin would.
#pragma once

#include "harness.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace hbsd::test {

inline const char* kSchool = "94000123";
inline const char* kClass = "6A1";

inline std::string M(const char* name) {
    return std::string(kSigner) + name;
}

inline Error error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e;
    }
    throw std::runtime_error("expected an hbsd::Error");
}

// "PolicyViolation:year_locked", "CertificateInvalid:expired", "ok", ...
inline std::string refusal(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        std::string s(error_name(e.code()));
        s = s.substr(s.rfind('.') + 1);  // "PolicyViolation", not the qualified wire name
        const auto& p = e.parameters();
        if (const auto* r = p.if_contains("reason"); r && r->is_string())
            s += ":" + std::string(r->get_string());
        return s;
    }
    return "ok";
}

struct Person {
    std::string name, role, subject, code;
};

inline std::vector<Person> people() {
    std::vector<Person> out;
    std::ifstream in(pki_dir() / "people.tsv");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        Person p;
        std::string keytype;
        std::getline(f, p.name, '\t');
        std::getline(f, p.role, '\t');
        std::getline(f, p.subject, '\t');
        std::getline(f, p.code, '\t');
        if (p.role == "-") continue;  // the extra hsm test key
        if (p.subject == "-") p.subject.clear();
        out.push_back(p);
    }
    return out;
}

inline Person person(const std::string& name) {
    for (auto& p : people())
        if (p.name == name) return p;
    throw std::runtime_error("no person " + name);
}

inline std::string certificate_pem(const std::string& name) {
    return read_file(pki_dir() / (name + ".pem"));
}

// RegisterCertificate (+ ApproveCertificate, + AssignRole for 94000123 / 2024-2025 / 6A1).
// Returns the fingerprint.
inline std::string enrol(protocol::Client& c, const Person& p, bool approve = true,
                         bool assign = true) {
    const bool seal = p.role == "school";
    boost::json::object reg{{"certificate", certificate_pem(p.name)},
                            {"kind", seal ? "school" : "person"},
                            {"school", kSchool}};
    if (!seal) reg["person"] = p.code;
    auto r = c.call(M("RegisterCertificate"), std::move(reg));
    const std::string fp(r.at("certificate").at("fingerprint").as_string());
    if (approve) c.call(M("ApproveCertificate"), {{"fingerprint", fp}});
    if (assign && !seal) {
        boost::json::object a{
            {"school", kSchool}, {"year", kYear}, {"role", p.role}, {"person", p.code}};
        if (p.role != "principal") a["class"] = kClass;
        if (p.role == "subject_teacher") a["subject"] = p.subject;
        c.call(M("AssignRole"), std::move(a));
    }
    return fp;
}

inline void enrol_all(protocol::Client& c) {
    for (const auto& p : people()) enrol(c, p);
}

inline std::string open_session(Daemon& d, protocol::Client& c) {
    return std::string(c.call(M("OpenSession"), {{"token", d.token_uri()}, {"pin", kPin}})
                           .at("session")
                           .as_string());
}

}  // namespace hbsd::test
