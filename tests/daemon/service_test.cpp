// The daemon as a Varlink service: introspection, standard errors, framing limits, idle
// connections, many clients, access by uid. Real hbsd binary, real sockets.
#include "harness.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/temp_dir.hpp"

#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

using namespace hbsd;
using namespace hbsd::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

// True when the daemon has hung up (EOF, or a reset because our unread bytes were dropped);
// false when the connection is still open after a few seconds.
bool closed_by_peer(protocol::Client& c) {
    c.set_timeout(3s);
    try {
        return !c.read_frame().has_value();
    } catch (const protocol::ConnectionError& e) {
        return std::string(e.what()) != "timed out";
    }
}

}  // namespace

TEST_CASE("service: GetInfo and GetInterfaceDescription") {
    Daemon d;
    auto c = d.client();
    auto info = c.call("org.varlink.service.GetInfo");
    CHECK(info.at("vendor").as_string() == "hbsd");
    CHECK(info.at("version").as_string() == HBSD_VERSION);
    CHECK(info.at("product").is_string());
    CHECK(info.at("url").is_string());
    CHECK(info.at("interfaces") ==
          json::array{"org.varlink.service", "vn.hocbaso.Signer", "vn.hocbaso.SignerAdmin"});

    auto desc =
        c.call("org.varlink.service.GetInterfaceDescription", {{"interface", "vn.hocbaso.Signer"}});
    CHECK(desc.at("description").as_string() == read_file(HBSD_VARLINK));
    auto svc = c.call("org.varlink.service.GetInterfaceDescription",
                      {{"interface", "org.varlink.service"}});
    CHECK(std::string(svc.at("description").as_string()).find("interface org.varlink.service") !=
          std::string::npos);

    try {
        c.call("org.varlink.service.GetInterfaceDescription", {{"interface", "org.example.X"}});
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::InterfaceNotFound);
        CHECK(e.parameters().at("interface").as_string() == "org.example.X");
    }
}

TEST_CASE("service: standard errors and the connection stays usable after them") {
    Daemon d;
    auto c = d.client();
    auto error_of = [&](const std::string& method, json::object p = {}) -> Error {
        try {
            c.call(method, std::move(p));
        } catch (const Error& e) {
            return e;
        }
        FAIL("no error for " << method);
        throw;
    };
    auto e1 = error_of("vn.hocbaso.Signer.NoSuchThing");
    CHECK(e1.code() == Errc::MethodNotFound);
    CHECK(e1.parameters().at("method").as_string() == "vn.hocbaso.Signer.NoSuchThing");
    CHECK(error_of("org.example.Other.Method").code() == Errc::InterfaceNotFound);
    // Implemented: a call without its parameters is InvalidParameter.
    CHECK(error_of("vn.hocbaso.Signer.SetYearLock").code() == Errc::InvalidParameter);
    CHECK(error_of("vn.hocbaso.Signer.WatchEvents").code() == Errc::ExpectedMore);

    auto e2 = error_of("vn.hocbaso.Signer.ListKeys");
    CHECK(e2.code() == Errc::InvalidParameter);
    CHECK(e2.parameters().at("parameter").as_string() == "token");
    auto e3 = error_of("vn.hocbaso.Signer.ListKeys", {{"token", 5}});
    CHECK(e3.parameters().at("parameter").as_string() == "token");
    auto e4 = error_of("vn.hocbaso.Signer.Status", {{"verbose", true}});
    CHECK(e4.parameters().at("parameter").as_string() == "verbose");
    auto e5 = error_of(
        "vn.hocbaso.Signer.Sign",
        {{"session", "x"}, {"key", "k"}, {"role", "janitor"}, {"year", "y"}, {"document", "d"}});
    CHECK(e5.parameters().at("parameter").as_string() == "role");
    // A subject belongs to the subject teacher's stage and to no other.
    auto e6 = error_of("vn.hocbaso.Signer.Sign", sign_params("x", "k", "subject_teacher", "<x/>"));
    CHECK(e6.parameters().at("parameter").as_string() == "subject");
    auto e7 = error_of("vn.hocbaso.Signer.Sign",
                       sign_params("x", "k", "principal", "<x/>", std::string("TOAN")));
    CHECK(e7.parameters().at("parameter").as_string() == "subject");

    CHECK(c.call("org.varlink.service.GetInfo").contains("vendor"));
}

TEST_CASE("service: oneway calls get no reply; more calls end with continues false") {
    Daemon d;
    auto c = d.client();
    c.call_oneway("org.varlink.service.GetInfo");
    c.call_oneway("vn.hocbaso.Signer.NoSuchThing");  // errors are not sent either
    // The next reply on the connection belongs to the next call.
    auto r = c.call("org.varlink.service.GetInterfaceDescription",
                    {{"interface", "org.varlink.service"}});
    CHECK(r.contains("description"));
    int replies = 0;
    c.call_more("vn.hocbaso.Signer.Status", {}, [&](const json::object& p, bool continues) {
        ++replies;
        CHECK_FALSE(continues);
        CHECK(p.contains("uptime_s"));
    });
    CHECK(replies == 1);
}

TEST_CASE("service: pipelined calls are answered in order") {
    Daemon d;
    auto c = d.client();
    std::string batch;
    for (int i = 0; i < 20; ++i) {
        protocol::Call call{i % 2 ? "vn.hocbaso.Signer.Status" : "org.varlink.service.GetInfo", {}};
        batch += protocol::encode_frame(protocol::encode_call(call));
    }
    c.send_raw(batch);
    for (int i = 0; i < 20; ++i) {
        auto r = c.read_reply();
        REQUIRE_FALSE(r.error);
        CHECK(r.parameters.contains(i % 2 ? "uptime_s" : "vendor"));
    }
}

TEST_CASE("service: malformed JSON gets an error then the connection closes; others go on") {
    Daemon d;
    auto other = d.client();
    auto c = d.client();
    c.send_raw(std::string("{\"method\": \"org.varlink.service.GetInfo\"", 40) + '\0');  // unclosed
    auto r = c.read_reply();
    REQUIRE(r.error);
    CHECK(*r.error == "org.varlink.service.InvalidParameter");
    CHECK(r.parameters.at("parameter").as_string() == "frame");
    CHECK(closed_by_peer(c));

    auto c2 = d.client();
    c2.send_raw(std::string("[1,2,3]") + '\0');
    CHECK(*c2.read_reply().error == "org.varlink.service.InvalidParameter");

    auto c3 = d.client();
    c3.send_raw(std::string("{\"parameters\":{}}") + '\0');
    auto r3 = c3.read_reply();
    CHECK(r3.parameters.at("parameter").as_string() == "method");

    CHECK(other.call("org.varlink.service.GetInfo").contains("vendor"));
    CHECK(d.client().call("org.varlink.service.GetInfo").contains("vendor"));
}

TEST_CASE("service: a frame over the limit is refused early and the connection closed") {
    Daemon d(DaemonOptions().limit("max_frame_bytes", 65536).limit("max_document_bytes", 65536));
    auto c = d.client();
    c.set_timeout(10s);
    // 16 MiB without a NUL: the daemon must give up long before the end.
    const std::string chunk(64 * 1024, 'x');
    std::size_t sent = 0;
    bool send_failed = false;
    try {
        c.send_raw("{\"method\":\"vn.hocbaso.Signer.Verify\",\"parameters\":{\"document\":\"");
        for (; sent < (16u << 20); sent += chunk.size()) c.send_raw(chunk);
    } catch (const protocol::ConnectionError&) {
        send_failed = true;  // EPIPE / ECONNRESET: the daemon hung up
    }
    CHECK(send_failed);
    CHECK(sent < (4u << 20));
    // The daemon said why before closing (read what is still buffered).
    std::optional<std::string> frame;
    try {
        frame = c.read_frame();
    } catch (const protocol::ConnectionError&) {
    }
    if (frame) {
        auto r = protocol::decode_reply(*frame);
        CHECK(*r.error == "vn.hocbaso.Signer.DocumentTooLarge");
        CHECK(r.parameters.at("limit").as_int64() == 65536);
        CHECK(r.parameters.at("size").as_int64() > 65536);
    }
    // Still serving.
    CHECK(d.client().call("org.varlink.service.GetInfo").contains("vendor"));
}

TEST_CASE("service: a frame just over the limit gets DocumentTooLarge") {
    Daemon d(DaemonOptions().limit("max_frame_bytes", 4096).limit("max_document_bytes", 4096));
    auto c = d.client();
    c.send_raw(std::string(5000, ' '));
    auto r = c.read_reply();
    REQUIRE(r.error);
    CHECK(*r.error == "vn.hocbaso.Signer.DocumentTooLarge");
    CHECK(r.parameters.at("limit").as_int64() == 4096);
    CHECK(closed_by_peer(c));
}

TEST_CASE("service: an idle connection is closed; busy ones are not") {
    Daemon d(DaemonOptions().limit("idle_timeout_s", 1));
    auto idle = d.client();
    auto active = d.client();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) {  // 2.5 s of activity, over two timeouts
        CHECK(active.call("org.varlink.service.GetInfo").contains("vendor"));
        std::this_thread::sleep_for(250ms);
    }
    CHECK(closed_by_peer(idle));
    CHECK(std::chrono::steady_clock::now() - start >= 1s);
    CHECK(active.call("org.varlink.service.GetInfo").contains("vendor"));
}

TEST_CASE("service: 200 concurrent clients") {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2048) {
        rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 4096);
        setrlimit(RLIMIT_NOFILE, &rl);  // the daemon inherits it
    }
    Daemon d(DaemonOptions().limit("max_connections", 300).limit("max_inflight", 300));
    std::vector<protocol::Client> clients;
    for (int i = 0; i < 200; ++i) clients.push_back(d.client());  // all connected at once
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (auto& c : clients)
        threads.emplace_back([&c, &ok] {
            try {
                for (int k = 0; k < 3; ++k) {
                    if (!c.call("org.varlink.service.GetInfo").contains("vendor")) return;
                    if (!c.call("vn.hocbaso.Signer.Status").contains("sessions")) return;
                }
                ++ok;
            } catch (const std::exception&) {
            }
        });
    for (auto& t : threads) t.join();
    CHECK(ok == 200);
}

TEST_CASE("service: over max_connections the newcomer hears Busy") {
    Daemon d(DaemonOptions().limit("max_connections", 2));
    // The harness's start-up probe counts until the daemon has seen it hang up: retry briefly.
    auto counted_client = [&] {
        for (int i = 0; i < 100; ++i) {
            try {
                auto c = d.client();
                if (c.call("org.varlink.service.GetInfo").contains("vendor")) return c;
            } catch (const std::exception&) {
            }
            std::this_thread::sleep_for(20ms);
        }
        throw std::runtime_error("no connection slot");
    };
    auto a = counted_client();
    auto b = counted_client();
    auto c = d.client();
    auto r = c.read_reply();
    REQUIRE(r.error);
    CHECK(*r.error == "vn.hocbaso.Signer.Busy");
    CHECK(r.parameters.at("retry_after_ms").as_int64() > 0);
}

TEST_CASE("service: capabilities come from SO_PEERCRED of the connecting uid") {
    Daemon d(DaemonOptions().grant(kNobody, R"(["read"])"));
    // Connected as 65534: read is granted, sign is not, and the refusal names the uid.
    const auto r = as_uid(kNobody, [&] {
        auto c = protocol::Client::connect(d.socket());
        std::string s = outcome([&] { c.call("vn.hocbaso.Signer.Status"); });
        s += " " + outcome([&] {
                 c.call("vn.hocbaso.Signer.OpenSession",
                        {{"token", "pkcs11:token=hbsd-test"}, {"pin", kPin}});
             });
        try {
            c.call("vn.hocbaso.Signer.Sign", sign_params("0123", "pkcs11:x", "principal", "<x/>"));
        } catch (const Error& e) {
            s += " " + std::string(error_name(e.code())) + " " + json::serialize(e.parameters());
        }
        return s;
    });
    CHECK(r ==
          "ok vn.hocbaso.Signer.PermissionDenied vn.hocbaso.Signer.PermissionDenied "
          R"({"uid":65534,"method":"vn.hocbaso.Signer.Sign"})");
    // A uid with no rule at all may still introspect, nothing else.
    const auto r2 = as_uid(4321, [&] {
        auto c = protocol::Client::connect(d.socket());
        return outcome([&] { c.call("org.varlink.service.GetInfo"); }) + " " +
               outcome([&] { c.call("vn.hocbaso.Signer.ListTokens"); });
    });
    CHECK(r2 == "ok vn.hocbaso.Signer.PermissionDenied");
}

TEST_CASE("service: hbsd --check-config") {
    const auto good = run_hbsd({"--check-config", "--config", HBSD_CONFIG_EXAMPLE});
    CHECK(good.code == 0);
    CHECK(good.out.find(": ok") != std::string::npos);

    const TempDir tmp("hbsd-cfg-");
    const fs::path bad = tmp / "hbsd.toml";
    write_file(bad,
               "[socket]\npath = \"/run/hbsd/hbsd.sock\"\n\n[limits]\nmax_inflight = "
               "8\nidle_timeout = 5\n");
    const auto r = run_hbsd({"--check-config", "--config", bad.string()});
    CHECK(r.code == 1);
    CHECK(r.err == "hbsd: " + bad.string() + ":6:1: unknown key 'idle_timeout' in [limits]\n");
    write_file(bad, "trust_anchors = \"" + tmp.path().string() + "/none\"\n");
    const auto r2 = run_hbsd({"--check-config", "--config", bad.string()});
    CHECK(r2.code == 1);
    CHECK(r2.err.find("/none") != std::string::npos);
}

TEST_CASE("service: a peer trickling an endless frame is closed at the idle timeout") {
    Daemon d(DaemonOptions().limit("idle_timeout_s", 1));
    auto c = d.client();
    c.send_raw("{\"method\":\"org.varlink.service.GetInfo\",\"parameters\":{\"x\":\"");
    bool closed = false;
    const auto start = std::chrono::steady_clock::now();
    try {
        for (int i = 0; i < 40; ++i) {  // one byte every 100 ms for up to 4 s
            c.send_raw("x");
            std::this_thread::sleep_for(100ms);
        }
    } catch (const protocol::ConnectionError&) {
        closed = true;
    }
    if (!closed) closed = closed_by_peer(c);
    CHECK(closed);
    CHECK(std::chrono::steady_clock::now() - start < 4s);
}

TEST_CASE("service: a peer that sends calls but reads no replies is not buffered for") {
    Daemon d;
    auto c = d.client();
    c.set_timeout(2s);
    std::string chunk;
    const auto call =
        protocol::encode_frame(protocol::encode_call({"org.varlink.service.GetInfo", {}}));
    while (chunk.size() < 64 * 1024) chunk += call;
    std::size_t sent = 0;
    bool blocked = false;
    try {
        for (; sent < (64u << 20); sent += chunk.size()) c.send_raw(chunk);
    } catch (const protocol::ConnectionError&) {
        blocked = true;  // SO_SNDTIMEO: the daemon stopped reading
    }
    CHECK(blocked);
    CHECK(sent < (8u << 20));
    // The replies that were made are all there, in order, once we read.
    auto r = c.read_reply();
    CHECK_FALSE(r.error);
    CHECK(r.parameters.contains("vendor"));
    CHECK(d.client().call("org.varlink.service.GetInfo").contains("vendor"));
}
