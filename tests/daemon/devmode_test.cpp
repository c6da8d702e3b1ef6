// hbsd --dev --socket PATH: provisions a demo PKI and token, prints one JSON line, serves the
// whole four-stage chain, and removes everything on SIGTERM.
#include "harness.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/temp_dir.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace hbsd;
using namespace hbsd::test;
namespace json = boost::json;

namespace {

// Starts `hbsd --dev` with stdout on a pipe; reads the first line (within 60 s).
struct DevDaemon {
    pid_t pid = -1;
    std::string line;
    fs::path dir;

    explicit DevDaemon(const std::string& socket) {
        int p[2];
        REQUIRE(::pipe(p) == 0);
        dir = fs::path(socket).parent_path();
        pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::dup2(p[1], 1);
            ::close(p[0]);
            ::setenv("TMPDIR", dir.c_str(), 1);  // the dev state dir goes inside ours
            ::execl(HBSD_BINARY, "hbsd", "--dev", "--socket", socket.c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(p[1]);
        pollfd pfd{p[0], POLLIN, 0};
        char c;
        while (::poll(&pfd, 1, 60000) == 1 && ::read(p[0], &c, 1) == 1 && c != '\n')
            line.push_back(c);
        ::close(p[0]);
    }
    ~DevDaemon() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

}  // namespace

TEST_CASE("devmode: one JSON line, the whole chain, clean exit") {
    const TempDir dir("hbsd-devtest-", kReachable);
    const fs::path& base = dir.path();
    const std::string socket = (base / "dev.sock").string();
    DevDaemon dev(socket);
    REQUIRE_FALSE(dev.line.empty());
    const auto j = json::parse(dev.line).as_object();
    CHECK(j.at("socket").as_string() == socket);
    const std::string token(j.at("token").as_string());
    CHECK(token.rfind("pkcs11:", 0) == 0);
    CHECK(token.find("token=hbsd-dev") != std::string::npos);
    const std::string pin(j.at("pin").as_string());
    const fs::path ca(std::string(j.at("ca").as_string()));
    CHECK(fs::exists(ca));
    const fs::path state = ca.parent_path().parent_path();
    CHECK(state.parent_path() == base);

    const auto& people = j.at("people").as_array();
    REQUIRE(people.size() == 15);
    std::map<std::string, std::string> key_of;  // "subject_teacher/TOAN", "principal", ...
    for (const auto& v : people) {
        const auto& p = v.as_object();
        std::string role(p.at("role").as_string());
        if (role == "subject_teacher")
            role += "/" + std::string(p.at("subject").as_string());
        else
            CHECK_FALSE(p.contains("subject"));
        CHECK(p.at("name").is_string());
        CHECK(p.at("person").is_string());
        CHECK(fs::exists(std::string(p.at("certificate").as_string())));
        const std::string key(p.at("key").as_string());
        CHECK(key.rfind(token, 0) == 0);
        key_of[role] = key;
    }
    CHECK(key_of.size() == 15);

    auto c = protocol::Client::connect(socket);
    const std::string session(
        c.call("vn.hocbaso.Signer.OpenSession", {{"token", token}, {"pin", pin}})
            .at("session")
            .as_string());
    std::string doc = fixture();
    auto sign = [&](const std::string& role, const std::string& key,
                    std::optional<std::string> subject) {
        auto r = c.call("vn.hocbaso.Signer.Sign", sign_params(session, key, role, doc, subject));
        doc = std::string(r.at("document").as_string());
    };
    for (const auto& s : kSubjects) sign("subject_teacher", key_of["subject_teacher/" + s], s);
    sign("homeroom_teacher", key_of["homeroom_teacher"], {});
    sign("principal", key_of["principal"], {});
    sign("school", key_of["school"], {});
    auto v = c.call("vn.hocbaso.Signer.Verify", {{"document", doc}});
    CHECK(v.at("verdict").as_string() == "valid");
    CHECK(v.at("signatures").as_array().size() == 15);

    // Only the invoking uid is granted anything.
    CHECK(as_uid(kNobody, [&] {
              auto other = protocol::Client::connect(socket);
              return outcome([&] { other.call("vn.hocbaso.Signer.Status"); });
          }) == "vn.hocbaso.Signer.PermissionDenied");

    ::kill(dev.pid, SIGTERM);
    int status = 0;
    ::waitpid(dev.pid, &status, 0);
    dev.pid = -1;
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK_FALSE(fs::exists(state));
    CHECK_FALSE(fs::exists(socket));
}
