// Principal's batch benchmark (issue: smart cards, token resilience, live events). What it
// measures, honestly: a SUBJECT-TEACHER batch of 1,500 records (the fixture with the record
// code changed per student, so every Id differs) signed through the real hbsd over its Unix
// socket - chunked SignBatch calls as `hbsctl sign-batch` makes them, one PIN entry, a
// WatchEvents watcher reading the `signed` events (with "n/m" progress) the whole time. A
// principal-stage batch would need every earlier stage signed first for each record; the
// subject-teacher stage is the same SignBatch path with less XML to verify per item.
// Prints records/s, raw C_Sign/s on the same SoftHSM2 token and key (bench/raw_sign), and
// the ratio.
// Usage: bench_batch [--records N] [--chunk N]
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "bench/raw_sign.hpp"
#include "tests/daemon/harness.hpp"

using namespace hbsd;
using namespace hbsd::test;
namespace json = boost::json;

int main(int argc, char** argv) {
    int records = 1500;
    int chunk = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--records")) records = std::atoi(argv[i + 1]);
        if (!std::strcmp(argv[i], "--chunk")) chunk = std::atoi(argv[i + 1]);
    }
    try {
        Daemon d(DaemonOptions().limit("max_batch_items", chunk));
        auto c = d.client();
        const std::string M = kSigner;
        const auto key = d.key_uri("gvbm-TOAN");
        std::vector<std::string> docs;
        docs.reserve(static_cast<std::size_t>(records));
        for (int i = 1; i <= records; ++i) docs.push_back(fixture_student(i));

        // A live watcher, as the principal's desktop tool would have.
        std::atomic<long> signed_events{0};
        auto watch_client = d.client();
        std::thread watcher([&] {
            try {
                watch_client.call_more(M + "WatchEvents", {}, [&](const json::object& r, bool) {
                    if (r.at("event").at("kind").as_string() == "signed") ++signed_events;
                });
            } catch (...) {
            }
        });

        const auto session =
            std::string(c.call(M + "OpenSession", {{"token", d.token_uri()}, {"pin", kPin}})
                            .at("session")
                            .as_string());
        using clock = std::chrono::steady_clock;
        const auto start = clock::now();
        long ok = 0;
        for (int at = 0; at < records; at += chunk) {
            json::array items;
            for (int i = at; i < std::min(records, at + chunk); ++i)
                items.push_back(json::object{{"document", docs[static_cast<std::size_t>(i)]},
                                             {"request_id", "bench-" + std::to_string(i)}});
            auto r = c.call(M + "SignBatch", {{"session", session},
                                              {"key", key},
                                              {"role", "subject_teacher"},
                                              {"year", kYear},
                                              {"subject", "TOAN"},
                                              {"items", std::move(items)}});
            for (const auto& v : r.at("results").as_array())
                ok += v.as_object().contains("document") && !v.at("document").is_null();
        }
        const double secs = std::chrono::duration<double>(clock::now() - start).count();
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        ::shutdown(watch_client.native_handle(), SHUT_RDWR);
        watcher.join();
        d.terminate();

        // The yardstick: C_Sign alone on the same token (the daemon is gone, one thread, as
        // one SignBatch signs one item after the other).
        ::setenv("SOFTHSM2_CONF", (d.dir() / "softhsm2.conf").c_str(), 1);
        const auto raw = bench::raw_sign(HBSD_SOFTHSM2_MODULE, "hbsd-test", kPin, "gvbm-TOAN",
                                         bench::RawKind::rsa_pkcs1_sha256, 1, 3.0);
        const double rate = ok / secs;
        std::printf("records signed          %ld of %d (chunks of %d, SignBatch over the socket)\n",
                    ok, records, chunk);
        std::printf("signed events watched   %ld\n", signed_events.load());
        std::printf("wall time               %.2f s\n", secs);
        std::printf("records/s               %.1f\n", rate);
        std::printf("raw C_Sign/s (RSA-2048) %.1f\n", raw.per_second);
        std::printf("ratio                   %.1f %%\n", 100.0 * rate / raw.per_second);
        return ok == records ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_batch: %s\n", e.what());
        return 1;
    }
}
