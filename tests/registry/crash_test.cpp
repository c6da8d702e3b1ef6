// Nothing lost (DESIGN.md, "Storage, audit, nothing lost"): hbsd is killed with SIGKILL at a
// random moment of a 200-record SignBatch, again and again on the same state directory. After
// each restart every record is either signed, archived and audited, or not signed at all;
// the audit chain verifies; the retry with the same request ids returns the same documents
// and signs the rest.
#include "tests/support/catch.hpp"
#include "tests/support/temp_dir.hpp"
#include "world.hpp"

#include <csignal>
#include <map>
#include <random>
#include <thread>

using namespace hbsd;
using namespace hbsd::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

std::string record_code(int n) {
    char code[32];
    std::snprintf(code, sizeof code, "94000123-2024-%04d", n);
    return code;
}

std::vector<json::object> all_entries(protocol::Client& c) {
    std::vector<json::object> out;
    std::int64_t after = 0;
    for (;;) {
        auto page =
            c.call(M("GetAuditLog"), {{"after", after}, {"limit", 10000}}).at("entries").as_array();
        if (page.empty()) return out;
        for (auto& e : page) out.push_back(e.as_object());
        after = out.back().at("seq").as_int64();
    }
}

}  // namespace

TEST_CASE("crash: kill -9 during a 200-record SignBatch leaves each record all or nothing") {
    const int rounds =
        std::getenv("HBSD_CRASH_ROUNDS") ? std::atoi(std::getenv("HBSD_CRASH_ROUNDS")) : 20;
    constexpr int kItems = 200;
    const TempDir state_dir("hbsd-crash-");
    const fs::path state = state_dir.path();
    DaemonOptions o;
    o.with_registry();
    o.state_dir = state.string();
    std::mt19937 rng(std::random_device{}());
    int killed_mid_batch = 0;

    for (int round = 0; round < rounds; ++round) {
        std::vector<std::string> docs;
        json::array items;
        for (int k = 0; k < kItems; ++k) {
            docs.push_back(fixture_student(round * kItems + k + 1));
            items.push_back(json::object{
                {"document", docs.back()},
                {"request_id", "crash-" + std::to_string(round) + "-" + std::to_string(k)}});
        }
        json::object params;
        {
            Daemon d(o);
            auto c = d.client();
            if (round == 0) enrol_all(c);
            const auto session = open_session(d, c);
            params = json::object{{"session", session},        {"key", d.key_uri("gvbm-TOAN")},
                                  {"role", "subject_teacher"}, {"year", kYear},
                                  {"subject", "TOAN"},         {"items", items}};
            // The kill lands after a random number of items have come back (streamed with
            // "more"), plus a random few milliseconds: inside the batch whatever its speed (a
            // fixed time window let a fast batch finish first), at a varying point of an item's
            // parse, C_Sign or commit in the lanes still running.
            std::atomic<bool> finished{false};
            std::atomic<int> answered{0};
            const int kill_after = std::uniform_int_distribution<int>(0, kItems - 10)(rng);
            std::thread caller([&] {
                try {
                    auto c2 = d.client();
                    c2.call_more(M("SignBatch"), params, [&](const json::object&, bool continues) {
                        answered.fetch_add(1);
                        if (!continues) finished = true;
                    });
                } catch (const std::exception&) {
                }
            });
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
            while (answered.load() < kill_after && !finished.load() &&
                   std::chrono::steady_clock::now() < give_up)
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            std::this_thread::sleep_for(
                std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(rng)));
            ::kill(d.pid(), SIGKILL);
            caller.join();
            if (!finished) ++killed_mid_batch;
        }
        Daemon d(o);
        auto c = d.client();
        REQUIRE(c.call(M("VerifyAuditLog")).at("ok").as_bool());

        // Which of this round's records the audit says were signed, by which entry.
        std::map<std::string, std::int64_t> signed_at;
        for (const auto& e : all_entries(c))
            if (e.at("method").as_string() == "Sign" && e.at("outcome").as_string() == "ok")
                signed_at[std::string(e.at("record").as_string())] = e.at("seq").as_int64();
        for (int k = 0; k < kItems; ++k) {
            const auto code = record_code(round * kItems + k + 1);
            const auto it = signed_at.find(code);
            if (it == signed_at.end()) {
                // Not signed at all: no record state either.
                CHECK(refusal([&] {
                          c.call(M("GetRecord"), {{"record", code}});
                      }) == "RecordNotFound");
                continue;
            }
            auto doc = c.call("vn.hocbaso.SignerAdmin.GetArchived", {{"seq", it->second}});
            CHECK(std::string(doc.at("document").as_string()).find(code) != std::string::npos);
            CHECK(c.call(M("GetRecord"), {{"record", code}}).at("record").at("state") == "active");
        }

        // The retry: same request ids, a new session. Already signed: the same document and
        // audit entry; the rest signed now.
        params["session"] = open_session(d, c);
        auto results = c.call(M("SignBatch"), params).at("results").as_array();
        REQUIRE(results.size() == kItems);
        for (int k = 0; k < kItems; ++k) {
            const auto& r = results[k].as_object();
            REQUIRE(r.contains("document"));
            const auto code = record_code(round * kItems + k + 1);
            if (auto it = signed_at.find(code); it != signed_at.end()) {
                CHECK(r.at("audit_seq").as_int64() == it->second);
                auto doc = c.call("vn.hocbaso.SignerAdmin.GetArchived", {{"seq", it->second}});
                CHECK(doc.at("document") == r.at("document"));
            }
        }
    }
    INFO("rounds killed before the batch finished: " << killed_mid_batch);
    CHECK(killed_mid_batch > 0);
}
