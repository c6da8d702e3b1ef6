// In-flight limits and shutdown: Busy when max_inflight is reached, SIGTERM while a batch runs.
#include "harness.hpp"
#include "tests/support/catch.hpp"

#include <sys/wait.h>

#include <atomic>
#include <future>
#include <thread>

using namespace hbsd;
using namespace hbsd::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

std::string M(const char* name) {
    return std::string(kSigner) + name;
}

json::object batch_params(Daemon& d, protocol::Client& c, int n) {
    const auto session =
        std::string(c.call(M("OpenSession"), {{"token", d.token_uri()}, {"pin", kPin}})
                        .at("session")
                        .as_string());
    json::array items;
    for (int i = 1; i <= n; ++i) items.push_back(json::object{{"document", fixture_student(i)}});
    return {{"session", session},        {"key", d.key_uri("gvbm-TOAN")},
            {"role", "subject_teacher"}, {"year", kYear},
            {"subject", "TOAN"},         {"items", std::move(items)}};
}

// Runs a streamed SignBatch on its own connection; `started` is set at the first reply.
struct BatchRun {
    std::promise<void> started;
    std::atomic<int> ok{0}, failed{0}, replies{0};
    std::string error;
    std::thread thread;

    BatchRun(Daemon& d, json::object params) {
        thread = std::thread([this, &d, params = std::move(params)] {
            try {
                auto c = d.client();
                c.call_more(M("SignBatch"), params, [&](const json::object& part, bool) {
                    if (replies++ == 0) started.set_value();
                    for (const auto& r : part.at("results").as_array())
                        (r.as_object().contains("document") ? ok : failed)++;
                });
            } catch (const std::exception& e) {
                error = e.what();
                if (replies == 0) started.set_value();
            }
        });
    }
    ~BatchRun() {
        if (thread.joinable()) thread.join();
    }
};

}  // namespace

TEST_CASE("lifecycle: Busy with retry_after_ms when every in-flight slot is taken") {
    Daemon d(DaemonOptions().limit("max_inflight", 1).limit("worker_threads", 2));
    auto setup = d.client();
    auto params = batch_params(d, setup, 600);
    auto other = d.client();
    BatchRun run(d, params);
    REQUIRE(run.started.get_future().wait_for(60s) == std::future_status::ready);
    try {
        other.call(M("Status"));
        FAIL("Status was not refused while the batch held the only slot");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::Busy);
        CHECK(e.parameters().at("retry_after_ms").as_int64() > 0);
    }
    // Introspection runs on the I/O thread and needs no slot.
    CHECK(other.call("org.varlink.service.GetInfo").contains("vendor"));
    run.thread.join();
    CHECK(run.error.empty());
    CHECK(run.ok == 600);
    CHECK(other.call(M("Status")).at("signatures").as_int64() == 600);
}

TEST_CASE("lifecycle: SIGTERM while a batch runs: the batch completes and new calls are refused") {
    Daemon d;
    auto setup = d.client();
    auto params = batch_params(d, setup, 600);
    auto bystander = d.client();  // connected before the signal
    BatchRun run(d, params);
    REQUIRE(run.started.get_future().wait_for(60s) == std::future_status::ready);
    ::kill(d.pid(), SIGTERM);

    // New connections are refused once the signal is handled (the socket is gone).
    bool refused = false;
    for (int i = 0; i < 100 && !refused; ++i) {
        try {
            protocol::connect_unix(d.socket());
            std::this_thread::sleep_for(20ms);
        } catch (const protocol::ConnectionError&) {
            refused = true;
        }
    }
    CHECK(refused);
    // New calls on an open connection are refused while the batch finishes.
    CHECK(run.replies < 600);
    try {
        bystander.call(M("Status"));
        FAIL("a new call was accepted during shutdown");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::Busy);
    }

    run.thread.join();
    CHECK(run.error.empty());
    CHECK(run.ok == 600);
    CHECK(run.failed == 0);
    const int status = d.wait(30s);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK_FALSE(std::filesystem::exists(d.socket()));
}
