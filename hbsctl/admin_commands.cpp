#include "hbsctl/admin_commands.hpp"

#include "hbsctl/exit_codes.hpp"
#include "hbsctl/io.hpp"

#include <boost/json.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace hbsd::hbsctl {
namespace {

namespace json = boost::json;
using protocol::Client;

constexpr const char* kSigner = "vn.hocbaso.Signer.";
constexpr const char* kAdmin = "vn.hocbaso.SignerAdmin.";

std::string str(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    if (!v || v->is_null()) return "-";
    if (v->is_string()) return std::string(v->get_string());
    return json::serialize(*v);
}

void print_certificate(const json::object& c) {
    std::printf(
        "%s  %-8s %-6s school %s%s%s\n  subject: %s\n  issuer:  %s  serial %s\n"
        "  valid %s .. %s  registered %s\n",
        str(c, "fingerprint").c_str(), str(c, "status").c_str(), str(c, "kind").c_str(),
        str(c, "school").c_str(), c.contains("person") ? "  person " : "",
        c.contains("person") ? str(c, "person").c_str() : "", str(c, "subject").c_str(),
        str(c, "issuer").c_str(), str(c, "serial").c_str(), str(c, "not_before").c_str(),
        str(c, "not_after").c_str(), str(c, "registered_at").c_str());
}

void print_record(const json::object& r) {
    std::printf("record %s  school %s  state %s\n", str(r, "record").c_str(),
                str(r, "school").c_str(), str(r, "state").c_str());
    std::string years;
    for (const auto& y : r.at("issued_years").as_array())
        years += (years.empty() ? "" : ", ") + std::string(y.as_string());
    std::printf("issued years: %s\n", years.empty() ? "-" : years.c_str());
    for (const auto& h : r.at("history").as_array())
        std::printf("  %s\n", std::string(h.as_string()).c_str());
}

struct Opts {
    std::string a, b, c, d;
    std::optional<std::string> oa, ob, oc;
    std::optional<std::int64_t> n1, n2;
    bool flag = false;
    std::string output = "-";
};

}  // namespace

void add_admin_commands(CLI::App& app, const bool& as_json, std::function<int(Client&)>& action) {
    // One set of option storage per sub-command, alive as long as `app` (static: hbsctl runs
    // one command per process). Callbacks run after this function returned: they capture
    // copies, and references only to what the caller owns (action, as_json).
    static std::vector<std::unique_ptr<Opts>> storage;
    auto opts = [&] { return storage.emplace_back(std::make_unique<Opts>()).get(); };
    auto reply = [&as_json](const json::object& r, auto&& human) {
        if (as_json)
            std::cout << json::serialize(r) << '\n';
        else
            human(r);
        return 0;
    };
    auto print_one_certificate = [](const json::object& r) {
        print_certificate(r.at("certificate").as_object());
    };

    // ---- certificates
    auto* certs = app.add_subcommand("certificates", "the certificate registry (admin)");
    certs->require_subcommand(1);
    {
        auto* o = opts();
        auto* c = certs->add_subcommand("register", "register a certificate (status pending)");
        c->add_option("certificate", o->a, "PEM or DER file ('-': stdin)")->required();
        c->add_option("--kind", o->b, "person or school")
            ->required()
            ->check(CLI::IsMember({"person", "school"}));
        c->add_option("--school", o->c, "school code, e.g. 94000123")->required();
        c->add_option("--person", o->oa, "the person's code (kind person), e.g. GV001");
        c->callback([&action, &as_json, reply, print_one_certificate, o] {
            action = [&as_json, reply, print_one_certificate, o](Client& cl) {
                json::object p{{"certificate", read_input(o->a)}, {"kind", o->b}, {"school", o->c}};
                if (o->oa) p["person"] = *o->oa;
                return reply(cl.call(std::string(kSigner) + "RegisterCertificate", std::move(p)),
                             print_one_certificate);
            };
        });
    }
    {
        auto* o = opts();
        auto* c = certs->add_subcommand("approve", "approve a registered certificate");
        c->add_option("fingerprint", o->a, "SHA-256 of the certificate, hex")->required();
        c->callback([&action, &as_json, reply, print_one_certificate, o] {
            action = [&as_json, reply, print_one_certificate, o](Client& cl) {
                return reply(
                    cl.call(std::string(kSigner) + "ApproveCertificate", {{"fingerprint", o->a}}),
                    print_one_certificate);
            };
        });
    }
    {
        auto* o = opts();
        auto* c = certs->add_subcommand("revoke", "revoke a certificate in the registry");
        c->add_option("fingerprint", o->a, "SHA-256 of the certificate, hex")->required();
        c->add_option("--reason", o->b, "why")->required();
        c->callback([&action, &as_json, reply, print_one_certificate, o] {
            action = [&as_json, reply, print_one_certificate, o](Client& cl) {
                return reply(cl.call(std::string(kSigner) + "RevokeCertificate",
                                     {{"fingerprint", o->a}, {"reason", o->b}}),
                             print_one_certificate);
            };
        });
    }
    {
        auto* o = opts();
        auto* c = certs->add_subcommand("list", "list registered certificates");
        c->add_option("--school", o->oa, "only this school's");
        c->callback([&action, &as_json, reply, print_one_certificate, o] {
            action = [&as_json, reply, print_one_certificate, o](Client& cl) {
                json::object p;
                if (o->oa) p["school"] = *o->oa;
                return reply(cl.call(std::string(kSigner) + "ListCertificates", std::move(p)),
                             [](const json::object& r) {
                                 for (const auto& c : r.at("certificates").as_array())
                                     print_certificate(c.as_object());
                             });
            };
        });
    }

    // ---- assignments
    auto add_assignment = [&](const char* name, const char* method, const char* help) {
        auto* o = opts();
        auto* c = app.add_subcommand(name, help);
        c->add_option("--school", o->a, "school code")->required();
        c->add_option("--year", o->b, "school year, e.g. 2024-2025")->required();
        c->add_option("--role", o->c, "subject_teacher, homeroom_teacher or principal")
            ->required()
            ->check(CLI::IsMember({"subject_teacher", "homeroom_teacher", "principal"}));
        c->add_option("--person", o->d, "the person's code")->required();
        c->add_option("--class", o->oa, "class (subject and homeroom teachers), e.g. 6A1");
        c->add_option("--subject", o->ob, "subject code (subject teachers), e.g. TOAN");
        c->callback([&action, &as_json, reply, print_one_certificate, o, method] {
            action = [&as_json, reply, print_one_certificate, o, method](Client& cl) {
                json::object p{{"school", o->a}, {"year", o->b}, {"role", o->c}, {"person", o->d}};
                if (o->oa) p["class"] = *o->oa;
                if (o->ob) p["subject"] = *o->ob;
                return reply(cl.call(std::string(kSigner) + method, std::move(p)),
                             [](const json::object&) { std::printf("ok\n"); });
            };
        });
    };
    add_assignment("assign", "AssignRole", "assign a role to a person (admin)");
    add_assignment("unassign", "UnassignRole", "remove a role assignment (admin)");
    {
        auto* o = opts();
        auto* c = app.add_subcommand("assignments", "list the role assignments of a school year");
        c->add_option("--school", o->a, "school code")->required();
        c->add_option("--year", o->b, "school year")->required();
        c->callback([&action, &as_json, reply, print_one_certificate, o] {
            action = [&as_json, reply, print_one_certificate, o](Client& cl) {
                return reply(cl.call(std::string(kSigner) + "ListAssignments",
                                     {{"school", o->a}, {"year", o->b}}),
                             [](const json::object& r) {
                                 for (const auto& v : r.at("assignments").as_array()) {
                                     const auto& a = v.as_object();
                                     std::printf("%-16s %-8s class %-5s subject %s\n",
                                                 str(a, "role").c_str(), str(a, "person").c_str(),
                                                 str(a, "class").c_str(),
                                                 str(a, "subject").c_str());
                                 }
                             });
            };
        });
    }
    {
        auto* o = opts();
        auto* c = app.add_subcommand("year-lock", "lock (or --unlock) a school year");
        c->add_option("--school", o->a, "school code")->required();
        c->add_option("--year", o->b, "school year")->required();
        c->add_flag("--unlock", o->flag, "unlock instead");
        c->callback([&action, &as_json, reply, print_one_certificate, o] {
            action = [&as_json, reply, print_one_certificate, o](Client& cl) {
                return reply(cl.call(std::string(kSigner) + "SetYearLock",
                                     {{"school", o->a}, {"year", o->b}, {"locked", !o->flag}}),
                             [o](const json::object&) {
                                 std::printf("%s\n", o->flag ? "unlocked" : "locked");
                             });
            };
        });
    }

    // ---- records
    auto* rec = app.add_subcommand("record", "record states: revocation and transfer");
    rec->require_subcommand(1);
    auto record_cmd = [&](const char* name, const char* help, auto&& setup, auto&& params,
                          const char* method) {
        auto* o = opts();
        auto* c = rec->add_subcommand(name, help);
        c->add_option("record", o->a, "record code, e.g. 94000123-2024-0001")->required();
        setup(c, o);
        c->callback([&action, &as_json, reply, print_one_certificate, o, params, method] {
            action = [&as_json, reply, print_one_certificate, o, params, method](Client& cl) {
                json::object p{{"record", o->a}};
                params(p, o);
                return reply(
                    cl.call(std::string(kSigner) + method, std::move(p)),
                    [](const json::object& r) { print_record(r.at("record").as_object()); });
            };
        });
    };
    record_cmd(
        "get", "the state and history of a record", [](CLI::App*, Opts*) {},
        [](json::object&, Opts*) {}, "GetRecord");
    record_cmd(
        "request-revocation", "file a revocation (thu hoi) request",
        [](CLI::App* c, Opts* o) { c->add_option("--reason", o->b, "why")->required(); },
        [](json::object& p, Opts* o) { p["reason"] = o->b; }, "RequestRevocation");
    record_cmd(
        "decide-revocation", "record the Ministry's decision on a revocation request",
        [](CLI::App* c, Opts* o) {
            c->add_option("--reference", o->b, "the Ministry's reference")->required();
            c->add_flag("--approved", o->flag, "approved (default: rejected)");
        },
        [](json::object& p, Opts* o) {
            p["approved"] = o->flag;
            p["reference"] = o->b;
        },
        "DecideRevocation");
    record_cmd(
        "transfer", "hand a record over to another school",
        [](CLI::App* c, Opts* o) {
            c->add_option("--to-school", o->b, "the receiving school's code")->required();
        },
        [](json::object& p, Opts* o) { p["to_school"] = o->b; }, "TransferRecord");

    // ---- audit
    auto* audit = app.add_subcommand("audit", "the hash-chained audit log (admin)");
    audit->require_subcommand(1);
    {
        auto* o = opts();
        auto* c = audit->add_subcommand("log", "entries after a sequence number");
        c->add_option("--after", o->n1, "only entries with seq > N");
        c->add_option("--limit", o->n2, "at most N entries (default 1000)");
        c->callback([&action, &as_json, reply, print_one_certificate, o] {
            action = [&as_json, reply, print_one_certificate, o](Client& cl) {
                json::object p;
                if (o->n1) p["after"] = *o->n1;
                if (o->n2) p["limit"] = *o->n2;
                return reply(cl.call(std::string(kSigner) + "GetAuditLog", std::move(p)),
                             [](const json::object& r) {
                                 for (const auto& v : r.at("entries").as_array()) {
                                     const auto& e = v.as_object();
                                     std::printf("%6s %s uid %-6s %-20s %-6s record %s role %s\n",
                                                 str(e, "seq").c_str(), str(e, "time").c_str(),
                                                 str(e, "uid").c_str(), str(e, "method").c_str(),
                                                 str(e, "outcome").c_str(),
                                                 str(e, "record").c_str(), str(e, "role").c_str());
                                     if (e.contains("detail") && !e.at("detail").is_null())
                                         std::printf("       %s\n", str(e, "detail").c_str());
                                 }
                             });
            };
        });
    }
    {
        auto* c = audit->add_subcommand("verify", "walk the hash chain");
        c->callback([&action, &as_json, reply, print_one_certificate] {
            action = [&as_json, reply, print_one_certificate](Client& cl) {
                const auto r = cl.call(std::string(kSigner) + "VerifyAuditLog");
                reply(r, [](const json::object& v) {
                    std::printf("%s: %s entries, head %s%s%s\n",
                                v.at("ok").as_bool() ? "ok" : "BROKEN", str(v, "entries").c_str(),
                                str(v, "head").c_str(),
                                v.contains("first_bad") && !v.at("first_bad").is_null()
                                    ? ", first bad entry "
                                    : "",
                                v.contains("first_bad") && !v.at("first_bad").is_null()
                                    ? str(v, "first_bad").c_str()
                                    : "");
                });
                return r.at("ok").as_bool() ? 0 : static_cast<int>(verify_invalid);
            };
        });
    }

    // ---- archive
    auto* archive = app.add_subcommand("archive", "signed documents kept by hbsd (admin)");
    archive->require_subcommand(1);
    {
        auto* o = opts();
        auto* c = archive->add_subcommand(
            "get", "the signed document an audit entry produced (SignerAdmin.GetArchived)");
        c->add_option("seq", o->n1, "audit entry (audit_seq of the signature)")->required();
        c->add_option("-o,--output", o->output, "file (default: stdout)");
        c->callback([&action, &as_json, reply, print_one_certificate, o] {
            action = [&as_json, reply, print_one_certificate, o](Client& cl) {
                auto r = cl.call(std::string(kAdmin) + "GetArchived", {{"seq", *o->n1}});
                if (as_json && o->output == "-") {
                    std::cout << json::serialize(r) << '\n';
                    return 0;
                }
                write_output(o->output, std::string(r.at("document").as_string()));
                if (o->output != "-") {
                    r.erase("document");
                    reply(r, [](const json::object& v) {
                        std::printf("sha256 %s\n", str(v, "sha256").c_str());
                    });
                }
                return 0;
            };
        });
    }
}

}  // namespace hbsd::hbsctl
