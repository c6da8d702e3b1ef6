// hbsctl: the command-line front-end of hbsd, on the same client library as every other
// front-end (protocol/client.hpp). One sub-command per method of vn.hocbaso.Signer that the
// daemon implements, plus info/describe for org.varlink.service.
#include "hbsctl/admin_commands.hpp"
#include "hbsctl/exit_codes.hpp"
#include "hbsctl/io.hpp"
#include "protocol/client.hpp"
#include "protocol/types.hpp"

#include <openssl/crypto.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

namespace json = boost::json;
using hbsd::Error;
using hbsd::protocol::Client;
using namespace hbsd::hbsctl;

namespace {

constexpr const char* kSigner = "vn.hocbaso.Signer.";

struct Globals {
    std::string socket = "/run/hbsd/hbsd.sock";
    bool json = false;
};

// Wipes the PIN from this process's memory once the call is made.
struct Secret {
    std::string value;
    ~Secret() { OPENSSL_cleanse(value.data(), value.size()); }
};

void print_json(const json::value& v) {
    std::cout << json::serialize(v) << '\n';
}

std::string joined(const std::vector<std::string>& v, const char* sep = ", ") {
    std::string s;
    for (const auto& e : v) s += (s.empty() ? "" : sep) + e;
    return s;
}

void print_signature(const hbsd::protocol::SignatureInfo& s, const char* indent = "  ") {
    const bool good = s.valid && s.trusted && s.in_order;
    std::printf("%s[%s] %s  %s%s%s  year %s\n", indent, good ? "ok" : "!!", s.id.c_str(),
                s.role.c_str(), s.subject ? " " : "", s.subject ? s.subject->c_str() : "",
                s.year.c_str());
    std::printf("%s     signer: %s\n", indent, s.signer.c_str());
    std::printf("%s     time: %s  valid: %s  trusted: %s  registered: %s  in_order: %s\n", indent,
                s.signing_time.value_or("-").c_str(), s.valid ? "yes" : "no",
                s.trusted ? "yes" : "no", s.registered ? "yes" : "no", s.in_order ? "yes" : "no");
    for (const auto& p : s.problems) std::printf("%s     problem: %s\n", indent, p.c_str());
}

void print_token(const hbsd::protocol::Token& t) {
    std::printf(
        "%s\n  label: %s  manufacturer: %s  model: %s  serial: %s\n  present: %s  "
        "logged in: %s%s%s\n",
        t.uri.c_str(), t.label.c_str(), t.manufacturer.c_str(), t.model.c_str(), t.serial.c_str(),
        t.present ? "yes" : "no", t.logged_in ? "yes" : "no", t.reader ? "  reader: " : "",
        t.reader ? t.reader->c_str() : "");
}

int report_error(const Globals& g, const Error& e) {
    if (g.json)
        print_json(
            json::object{{"error", hbsd::error_name(e.code())}, {"parameters", e.parameters()}});
    std::fprintf(stderr, "hbsctl: %s\n", e.what());
    return exit_code_for(e.code());
}

std::string pin_from(std::optional<int> pin_fd, const std::string& token) {
    if (pin_fd) return read_pin_fd(*pin_fd);
    return read_pin_tty("PIN for " + token + ": ");
}

// ---- the sub-commands -----------------------------------------------------------------

struct SignArgs {
    std::string session, key, role, year;
    std::optional<std::string> subject, request_id;
};

void add_sign_options(CLI::App* c, SignArgs& a) {
    c->add_option("--session", a.session,
                  "session id from `hbsctl open-session` (or $HBSD_SESSION)")
        ->envname("HBSD_SESSION")
        ->required();
    c->add_option("--key", a.key, "pkcs11: URI of the private key")->required();
    c->add_option("--role", a.role, "signing stage")
        ->required()
        ->check(CLI::IsMember({"subject_teacher", "homeroom_teacher", "principal", "school"}));
    c->add_option("--year", a.year, "school year, e.g. 2024-2025")->required();
    c->add_option("--subject", a.subject, "subject code (role subject_teacher), e.g. TOAN");
}

json::object sign_params(const SignArgs& a) {
    json::object p{{"session", a.session}, {"key", a.key}, {"role", a.role}, {"year", a.year}};
    if (a.subject) p["subject"] = *a.subject;
    return p;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"hbsctl - command-line front-end of hbsd (digital school records signing)",
                 "hbsctl"};
    app.footer(kExitCodeHelp);
    app.require_subcommand(1);
    Globals g;
    if (const char* s = std::getenv("HBSD_SOCKET")) g.socket = s;
    app.add_option("-s,--socket", g.socket, "daemon socket (or $HBSD_SOCKET)")
        ->capture_default_str();
    app.add_flag("--json", g.json, "print the daemon's reply as JSON");

    std::function<int(Client&)> action;

    auto* info = app.add_subcommand("info", "org.varlink.service.GetInfo");
    info->callback([&] {
        action = [&](Client& c) {
            auto r = c.call("org.varlink.service.GetInfo");
            if (g.json) return print_json(r), 0;
            for (const auto& [k, v] : r)
                std::printf("%-11s %s\n", std::string(k).c_str(),
                            v.is_string() ? std::string(v.get_string()).c_str()
                                          : json::serialize(v).c_str());
            return 0;
        };
    });

    std::string iface = "vn.hocbaso.Signer";
    auto* describe = app.add_subcommand("describe", "org.varlink.service.GetInterfaceDescription");
    describe->add_option("interface", iface, "interface name")->capture_default_str();
    describe->callback([&] {
        action = [&](Client& c) {
            auto r = c.call("org.varlink.service.GetInterfaceDescription", {{"interface", iface}});
            if (g.json) return print_json(r), 0;
            std::cout << std::string(r.at("description").as_string());
            return 0;
        };
    });

    auto* status = app.add_subcommand("status", "daemon status");
    status->callback([&] {
        action = [&](Client& c) {
            auto r = c.call(std::string(kSigner) + "Status");
            if (g.json) return print_json(r), 0;
            std::printf("version %s, up %lld s, %lld sessions, %lld signatures, store %s\n",
                        std::string(r.at("version").as_string()).c_str(),
                        static_cast<long long>(r.at("uptime_s").to_number<std::int64_t>()),
                        static_cast<long long>(r.at("sessions").to_number<std::int64_t>()),
                        static_cast<long long>(r.at("signatures").to_number<std::int64_t>()),
                        std::string(r.at("store").as_string()).c_str());
            for (const auto& t : json::value_to<std::vector<hbsd::protocol::Token>>(r.at("tokens")))
                print_token(t);
            return 0;
        };
    });

    auto* tokens = app.add_subcommand("tokens", "list tokens");
    tokens->callback([&] {
        action = [&](Client& c) {
            auto r = c.call(std::string(kSigner) + "ListTokens");
            if (g.json) return print_json(r), 0;
            for (const auto& t : json::value_to<std::vector<hbsd::protocol::Token>>(r.at("tokens")))
                print_token(t);
            return 0;
        };
    });

    std::string token;
    auto* keys = app.add_subcommand("keys", "list the keys of a token");
    keys->add_option("token", token, "pkcs11: URI of the token")->required();
    keys->callback([&] {
        action = [&](Client& c) {
            auto r = c.call(std::string(kSigner) + "ListKeys", {{"token", token}});
            if (g.json) return print_json(r), 0;
            for (const auto& k : json::value_to<std::vector<hbsd::protocol::Key>>(r.at("keys")))
                std::printf("%s\n  label: %s  %s-%lld  fingerprint: %s\n", k.uri.c_str(),
                            k.label.c_str(), k.algorithm.c_str(), static_cast<long long>(k.bits),
                            k.fingerprint.value_or("-").c_str());
            return 0;
        };
    });

    std::optional<int> pin_fd;
    std::optional<std::int64_t> ttl, max_signatures;
    bool quiet = false, cached_pin = false;
    auto* open = app.add_subcommand("open-session", "log in to a token (PIN from the terminal)");
    open->add_option("token", token, "pkcs11: URI of the token")->required();
    open->add_option("--pin-fd", pin_fd,
                     "read the PIN from this file descriptor, not the terminal");
    open->add_option("--ttl", ttl, "session lifetime in seconds (the daemon caps it)");
    open->add_option("--max-signatures", max_signatures, "end the session after N signatures");
    open->add_flag("-q,--quiet", quiet, "print only the session id (for $(...))");
    // An empty PIN asks the daemon for the one this user typed for this token ([pin_cache]).
    open->add_flag("--cached-pin", cached_pin,
                   "use the PIN the daemon cached for you and this token (no prompt)")
        ->excludes("--pin-fd");
    open->callback([&] {
        action = [&](Client& c) {
            Secret pin{cached_pin ? std::string() : pin_from(pin_fd, token)};
            json::object p{{"token", token}, {"pin", pin.value}};
            if (ttl) p["ttl_s"] = *ttl;
            if (max_signatures) p["max_signatures"] = *max_signatures;
            auto r = c.call(std::string(kSigner) + "OpenSession", std::move(p));
            if (g.json) return print_json(r), 0;
            const std::string id(r.at("session").as_string());
            if (quiet)
                std::printf("%s\n", id.c_str());
            else
                std::printf("session %s\nexpires %s\n", id.c_str(),
                            std::string(r.at("expires_at").as_string()).c_str());
            return 0;
        };
    });

    std::string session;
    auto* close = app.add_subcommand("close-session", "end a session (logs the token out)");
    close->add_option("session", session, "session id")->envname("HBSD_SESSION")->required();
    close->callback([&] {
        action = [&](Client& c) {
            c.call(std::string(kSigner) + "CloseSession", {{"session", session}});
            if (g.json) print_json(json::object{});
            return 0;
        };
    });

    std::optional<std::string> forget_token;
    auto* forget = app.add_subcommand(
        "forget-pins", "make the daemon forget the PINs it cached for you (all, or one token's)");
    forget->add_option("token", forget_token, "pkcs11: URI of the token");
    forget->callback([&] {
        action = [&](Client& c) {
            json::object p;
            if (forget_token) p["token"] = *forget_token;
            auto r = c.call("vn.hocbaso.SignerAdmin.ForgetPins", std::move(p));
            if (g.json) return print_json(r), 0;
            std::printf("forgot %lld PIN(s)\n",
                        static_cast<long long>(r.at("dropped").to_number<std::int64_t>()));
            return 0;
        };
    });

    SignArgs sa;
    std::string input = "-", output = "-";
    auto* sign = app.add_subcommand("sign", "add one signature to a record");
    add_sign_options(sign, sa);
    sign->add_option("--request-id", sa.request_id, "makes a retry return the first result");
    sign->add_option("-o,--output", output, "signed document (default: stdout)");
    sign->add_option("document", input, "record XML ('-': stdin)")->required();
    sign->callback([&] {
        action = [&](Client& c) {
            auto p = sign_params(sa);
            p["document"] = read_input(input);
            if (sa.request_id) p["request_id"] = *sa.request_id;
            auto r = c.call(std::string(kSigner) + "Sign", std::move(p));
            if (g.json && output == "-") return print_json(r), 0;
            write_output(output, std::string(r.at("document").as_string()));
            r.erase("document");
            if (g.json) return print_json(r), 0;
            // With the document on stdout, the summary goes to stderr.
            if (output == "-") std::fflush(stdout), ::dup2(2, 1);
            std::printf("signed: audit_seq %lld\n",
                        static_cast<long long>(r.at("audit_seq").to_number<std::int64_t>()));
            print_signature(json::value_to<hbsd::protocol::SignatureInfo>(r.at("signature")));
            return 0;
        };
    });

    SignArgs ba;
    std::vector<std::string> inputs;
    std::string output_dir;
    std::size_t chunk = 50;
    std::optional<std::string> request_prefix;
    auto* batch = app.add_subcommand("sign-batch", "sign many records, one result per record");
    add_sign_options(batch, ba);
    batch
        ->add_option("-o,--output-dir", output_dir,
                     "directory for the signed documents (same names)")
        ->required();
    batch->add_option("--chunk", chunk, "records per SignBatch call")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    batch->add_option("--request-id-prefix", request_prefix,
                      "request_id of each record: PREFIX + its file name (idempotent retries)");
    batch->add_option("documents", inputs, "record XML files")->required();
    batch->callback([&] {
        action = [&](Client& c) {
            int failed = 0, done = 0;
            json::array all;
            const bool progress = !g.json && ::isatty(2);
            for (std::size_t start = 0; start < inputs.size(); start += chunk) {
                const std::size_t end = std::min(inputs.size(), start + chunk);
                json::array items;
                for (std::size_t i = start; i < end; ++i) {
                    json::object it{{"document", read_input(inputs[i])}};
                    if (request_prefix)
                        it["request_id"] =
                            *request_prefix + std::filesystem::path(inputs[i]).filename().string();
                    items.push_back(std::move(it));
                }
                auto p = sign_params(ba);
                p["items"] = std::move(items);
                std::size_t i = start;
                c.call_more(
                    std::string(kSigner) + "SignBatch", std::move(p),
                    [&](const json::object& r, bool) {
                        for (const auto& v : r.at("results").as_array()) {
                            auto br = json::value_to<hbsd::protocol::BatchResult>(v);
                            const auto name = std::filesystem::path(inputs[i]).filename();
                            json::object line{{"file", inputs[i]}};
                            if (br.document) {
                                write_output((std::filesystem::path(output_dir) / name).string(),
                                             *br.document);
                                line["audit_seq"] = br.audit_seq.value_or(0);
                                ++done;
                                if (!g.json) std::printf("ok   %s\n", inputs[i].c_str());
                            } else {
                                ++failed;
                                line["error"] = br.error.value_or("");
                                line["error_parameters"] =
                                    br.error_parameters.value_or(json::object{});
                                if (!g.json)
                                    std::printf("FAIL %s: %s %s\n", inputs[i].c_str(),
                                                br.error.value_or("").c_str(),
                                                json::serialize(line["error_parameters"]).c_str());
                            }
                            if (g.json) all.push_back(std::move(line));
                            ++i;
                            if (progress) {
                                // One line redrawn in place on the terminal; the ok/FAIL lines
                                // stay on stdout for scripts.
                                const std::size_t width = 40, total = inputs.size();
                                const std::size_t filled = i * width / total;
                                std::fprintf(stderr, "\r[%s%s] %zu/%zu  %d failed", 
                                             std::string(filled, '#').c_str(),
                                             std::string(width - filled, ' ').c_str(), i, total,
                                             failed);
                                if (i == total) std::fputc('\n', stderr);
                                std::fflush(stderr);
                            }
                        }
                    });
            }
            if (g.json)
                print_json(json::object{{"signed", done}, {"failed", failed}, {"results", all}});
            else
                std::printf("%d signed, %d failed\n", done, failed);
            return failed ? static_cast<int>(batch_partial) : 0;
        };
    });

    std::optional<std::size_t> watch_count;
    auto* watch = app.add_subcommand(
        "watch", "print the daemon's events as they happen (WatchEvents), until interrupted");
    watch->add_option("-n,--count", watch_count, "stop after this many events");
    watch->callback([&] {
        action = [&](Client& c) {
            std::size_t seen = 0;
            // WatchEvents never ends by itself; stopping early just hangs up.
            struct Enough {};
            try {
                c.call_more(std::string(kSigner) + "WatchEvents", {},
                            [&](const json::object& r, bool) {
                                const auto& e = r.at("event").as_object();
                                if (g.json) {
                                    print_json(e);
                                } else {
                                    auto field = [&](const char* k) -> std::string {
                                        const auto* v = e.if_contains(k);
                                        return v && v->is_string()
                                                   ? " " + std::string(k) + "=" +
                                                         std::string(v->get_string())
                                                   : std::string();
                                    };
                                    std::printf("%s %-16s%s%s%s%s\n",
                                                std::string(e.at("time").as_string()).c_str(),
                                                std::string(e.at("kind").as_string()).c_str(),
                                                field("token").c_str(), field("reader").c_str(),
                                                field("record").c_str(), field("detail").c_str());
                                }
                                std::fflush(stdout);
                                if (watch_count && ++seen >= *watch_count) throw Enough{};
                            });
            } catch (const Enough&) {
            }
            return 0;
        };
    });

    auto* verify = app.add_subcommand("verify", "check every signature of a record");
    verify->add_option("document", input, "record XML ('-': stdin)")->required();
    verify->callback([&] {
        action = [&](Client& c) {
            auto r = c.call(std::string(kSigner) + "Verify", {{"document", read_input(input)}});
            const auto v = json::value_to<hbsd::protocol::VerifyResult>(json::value(r));
            if (g.json) {
                print_json(r);
            } else {
                std::printf("verdict: %s\nrecord:  %s\n", v.verdict.c_str(), v.record.c_str());
                for (const auto& y : v.years)
                    std::printf("year %s  school %s  class %s  stage %s%s%s\n", y.year.c_str(),
                                y.school.c_str(), y.class_.c_str(), y.stage.c_str(),
                                y.missing_subjects.empty() ? "" : "  missing: ",
                                joined(y.missing_subjects).c_str());
                for (const auto& s : v.signatures) print_signature(s);
            }
            if (v.verdict == "invalid") return static_cast<int>(verify_invalid);
            if (v.verdict == "incomplete") return static_cast<int>(verify_incomplete);
            return 0;
        };
    });

    // certificates, assign/unassign/assignments, year-lock, record, audit, archive.
    add_admin_commands(app, g.json, action);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : static_cast<int>(usage);
    }

    try {
        auto client = Client::connect(g.socket);
        return action(client);
    } catch (const Error& e) {
        return report_error(g, e);
    } catch (const hbsd::protocol::ConnectionError& e) {
        std::fprintf(stderr, "hbsctl: %s\n", e.what());
        return connection;
    } catch (const PinError& e) {
        std::fprintf(stderr, "hbsctl: %s\n", e.what());
        return usage;
    } catch (const InputError& e) {
        std::fprintf(stderr, "hbsctl: %s\n", e.what());
        return invalid_document;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hbsctl: %s\n", e.what());
        return internal;
    }
}
