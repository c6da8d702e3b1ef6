#include "harness.hpp"

#include "tests/support/temp_dir.hpp"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace hbsd::test {
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

// The fixture's PKI and token, or (a test binary run by hand) a fresh pair for this process.
struct Material {
    fs::path pki, token;
};

const Material& material() {
    static const Material m = [] {
        const fs::path base(HBSD_DAEMON_TEST_MATERIAL);
        if (fs::exists(base / "pki" / "people.tsv") && fs::exists(base / "token" / "softhsm2.conf"))
            return Material{base / "pki", base / "token"};
        const fs::path d = make_temp_dir("hbsd-daemon-material-", kReachable);
        run(quote(fs::path(HBSD_TEST_SUPPORT_DIR) / "make-test-pki") + " " + quote(d / "pki") +
            " >/dev/null");
        run(quote(fs::path(HBSD_TEST_SUPPORT_DIR) / "make-softhsm-token") + " " +
            quote(d / "token") + " " + quote(d / "pki"));
        return Material{d / "pki", d / "token"};
    }();
    return m;
}

bool can_connect(const std::string& path) {
    try {
        protocol::connect_unix(path);
        return true;
    } catch (const protocol::ConnectionError&) {
        return false;
    }
}

}  // namespace

const fs::path& pki_dir() {
    return material().pki;
}
const fs::path& token_template_dir() {
    return material().token;
}

void write_file(const fs::path& p, const std::string& data) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << data;
    if (!out) throw std::runtime_error("cannot write " + p.string());
}

std::string fixture() {
    return read_file(HBSD_FIXTURE);
}

std::string fixture_student(int n) {
    char code[32];
    std::snprintf(code, sizeof code, "94000123-2024-%04d", n);
    std::string doc = fixture();
    const std::string from = kFixtureRecord;
    for (auto pos = doc.find(from); pos != std::string::npos; pos = doc.find(from, pos + 1))
        doc.replace(pos, from.size(), code);
    return doc;
}

Daemon::Daemon(DaemonOptions options) {
    // ~Daemon does not run for a constructor that throws (the cp, a test's prepare_token, an hbsd
    // that does not start): until this Daemon is whole, the TempDir removes the directory.
    TempDir dir("hbsd-daemon-", kReachable);
    dir_ = dir.path();
    run("cp -a " + quote(token_template_dir() / "tokens") + " " + quote(dir_ / "tokens"));
    write_file(dir_ / "softhsm2.conf", "directories.tokendir = " + (dir_ / "tokens").string() +
                                           "\nobjectstore.backend = file\nlog.level = ERROR\n"
                                           "slots.removable = false\n");
    fs::create_directories(dir_ / "anchors");
    fs::create_directories(dir_ / "state");
    if (options.trust_test_ca) fs::copy_file(pki_dir() / "ca.pem", dir_ / "anchors" / "ca.pem");
    if (options.prepare_token) options.prepare_token(dir_);

    write_file(dir_ / "hbsd.toml", config_text(options));

    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        ::setenv("SOFTHSM2_CONF", (dir_ / "softhsm2.conf").c_str(), 1);
        ::unsetenv("LISTEN_FDS");
        ::setenv("HBSD_FAULT_REAL_MODULE", HBSD_SOFTHSM2_MODULE, 1);
        ::setenv("HBSD_FAULT_CONTROL", (dir_ / "fault.control").c_str(), 1);
        for (const auto& [k, v] : options.env) ::setenv(k.c_str(), v.c_str(), 1);
        const int log = ::open((dir_ / "hbsd.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(log, 1);
        ::dup2(log, 2);
        const char* verbose = options.log_level ? nullptr : "--verbose";
        ::execl(HBSD_BINARY, "hbsd", "--config", (dir_ / "hbsd.toml").c_str(), verbose,
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!can_connect(socket())) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("hbsd exited at start-up:\n" + log());
        }
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("hbsd did not listen in time:\n" + log());
        std::this_thread::sleep_for(20ms);
    }
    dir.release();  // ~Daemon removes it from here on
}

std::string Daemon::config_text(const DaemonOptions& options) const {
    std::ostringstream cfg;
    cfg << "state_dir = \"" << options.state_dir.value_or((dir_ / "state").string()) << "\"\n";
    if (options.trust_test_ca) cfg << "trust_anchors = \"" << (dir_ / "anchors").string() << "\"\n";
    cfg << "registry_checks = " << (options.registry ? "true" : "false") << "\n";
    if (options.log_level) cfg << "log_level = \"" << *options.log_level << "\"\n";
    if (!options.crl_files.empty()) {
        cfg << "crl_files = [";
        for (const auto& f : options.crl_files) cfg << "\"" << f << "\", ";
        cfg << "]\n";
    }
    cfg << "\n[[module]]\nname = \"softhsm\"\npath = \""
        << (options.fault_module ? HBSD_FAULT_MODULE : HBSD_SOFTHSM2_MODULE) << "\"\n\n"
        << "[socket]\npath = \"" << socket() << "\"\nmode = 0o666\n\n"
        << "[limits]\n";
    for (const auto& [k, v] : options.limits) cfg << k << " = " << v << "\n";
    cfg << "\n[[access]]\nuser = 0\ncapabilities = [\"admin\"]\n";
    for (const auto& [uid, caps] : options.access)
        cfg << "\n[[access]]\nuser = " << uid << "\ncapabilities = " << caps << "\n";
    cfg << options.extra_config;
    return cfg.str();
}

void Daemon::reconfigure(const DaemonOptions& options) {
    write_config(config_text(options));
}

void Daemon::write_config(const std::string& text) {
    // Whole or not at all, as an editor or a package upgrade leaves it.
    write_file(dir_ / "hbsd.toml.tmp", text);
    fs::rename(dir_ / "hbsd.toml.tmp", dir_ / "hbsd.toml");
}

Daemon::~Daemon() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

protocol::Client Daemon::client() const {
    auto c = protocol::Client::connect(socket());
    c.set_timeout(120s);
    return c;
}

int Daemon::wait(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return status;
        }
        if (std::chrono::steady_clock::now() > deadline) return -1;
        std::this_thread::sleep_for(20ms);
    }
    return -1;
}

int Daemon::terminate(std::chrono::seconds timeout) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    return wait(timeout);
}

std::string Daemon::log() const {
    try {
        return read_file(dir_ / "hbsd.log");
    } catch (const std::exception&) {
        return {};
    }
}

void Daemon::set_faults(const std::string& directives) {
    write_file(dir_ / "fault.control.tmp", directives);
    fs::rename(dir_ / "fault.control.tmp", dir_ / "fault.control");
}

std::string Daemon::token_uri() {
    if (token_uri_.empty()) {
        auto c = client();
        const auto r = c.call(std::string(kSigner) + "ListTokens");
        for (const auto& t : r.at("tokens").as_array())
            if (t.at("label").as_string() == "hbsd-test")
                token_uri_ = std::string(t.at("uri").as_string());
        if (token_uri_.empty()) throw std::runtime_error("token hbsd-test not listed");
    }
    return token_uri_;
}

std::string Daemon::key_uri(const std::string& label) {
    if (keys_.empty()) {
        auto c = client();
        auto r = c.call(std::string(kSigner) + "ListKeys", {{"token", token_uri()}});
        for (const auto& k : r.at("keys").as_array())
            keys_[std::string(k.at("label").as_string())] = std::string(k.at("uri").as_string());
    }
    auto it = keys_.find(label);
    if (it == keys_.end()) throw std::runtime_error("no key " + label);
    return it->second;
}

void pkcs11_tool(const fs::path& dir, const std::string& args) {
    const fs::path out = dir / "pkcs11-tool.out";
    const std::string command = "SOFTHSM2_CONF=" + quote(dir / "softhsm2.conf") +
                                " pkcs11-tool --module " + quote(HBSD_SOFTHSM2_MODULE) +
                                " --token-label hbsd-test --login --pin " + kPin + " " + args;
    if (std::system((command + " >" + quote(out) + " 2>&1").c_str()) != 0)
        throw std::runtime_error("failed: " + command + "\n" + read_file(out));
}

std::string as_uid(uid_t uid, const std::function<std::string()>& fn) {
    int p[2];
    if (::pipe(p) != 0) throw std::runtime_error("pipe");
    const pid_t child = ::fork();
    if (child < 0) throw std::runtime_error("fork");
    if (child == 0) {
        ::close(p[0]);
        std::string result;
        if (::setgroups(0, nullptr) != 0 || ::setresgid(uid, uid, uid) != 0 ||
            ::setresuid(uid, uid, uid) != 0) {
            result = "setresuid failed";
        } else {
            try {
                result = fn();
            } catch (const std::exception& e) {
                result = std::string("exception: ") + e.what();
            }
        }
        if (::write(p[1], result.data(), result.size()) < 0) ::_exit(2);
        ::_exit(0);
    }
    ::close(p[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(p[0]);
    ::waitpid(child, nullptr, 0);
    return out;
}

std::string outcome(const std::function<void()>& fn) {
    try {
        fn();
        return "ok";
    } catch (const Error& e) {
        return std::string(error_name(e.code()));
    }
}

namespace {

Run run_program(const char* path, const std::vector<std::string>& args, const std::string& input,
                const std::optional<std::string>& pin_on_fd3) {
    const TempDir d("hbsd-ctl-", kReachable);
    write_file(d / "in", input);
    int pin_pipe[2] = {-1, -1};
    if (pin_on_fd3) {
        if (::pipe(pin_pipe) != 0) throw std::runtime_error("pipe");
        if (::write(pin_pipe[1], pin_on_fd3->data(), pin_on_fd3->size()) < 0)
            throw std::runtime_error("write pin");
        ::close(pin_pipe[1]);
    }
    const pid_t child = ::fork();
    if (child == 0) {
        const int in = ::open((d / "in").c_str(), O_RDONLY);
        const int out = ::open((d / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err = ::open((d / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(err, 2);
        if (pin_on_fd3) ::dup2(pin_pipe[0], 3);
        // No terminal: a PIN prompt must not hang the test.
        ::setsid();
        std::vector<char*> argv{const_cast<char*>(path)};
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(path, argv.data());
        ::_exit(127);
    }
    if (pin_on_fd3) ::close(pin_pipe[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    Run r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_file(d / "out");
    r.err = read_file(d / "err");
    return r;
}

}  // namespace

Run run_hbsctl(const std::vector<std::string>& args, const std::string& input,
               std::optional<std::string> pin_on_fd3) {
    return run_program(HBSCTL_BINARY, args, input, pin_on_fd3);
}

Run run_hbsd(const std::vector<std::string>& args) {
    return run_program(HBSD_BINARY, args, {}, std::nullopt);
}

json::object sign_params(const std::string& session, const std::string& key,
                         const std::string& role, const std::string& document,
                         std::optional<std::string> subject) {
    json::object p{{"session", session},
                   {"key", key},
                   {"role", role},
                   {"year", kYear},
                   {"document", document}};
    if (subject) p["subject"] = *subject;
    return p;
}

}  // namespace hbsd::test
