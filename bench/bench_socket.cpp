// End-to-end Sign over the socket (issue: socket throughput and latency). The REAL hbsd
// (tests/daemon/harness, registry_checks off as in bench_batch) is signed against by 1, 8 and 64
// client threads, each with its own connection and its own session (OpenSession with the PIN
// before the timed window), each calling Sign one document after the other for a fixed time.
// - RSA-2048: the fixture's subject_teacher stage for TOAN with gvbm-TOAN's key.
// - P-256: the school seal ("truong", the only P-256 key of the test PKI) on a prepared
//   document: the fixture with the 12 subject teachers, the homeroom teacher and the principal
//   signed once over the socket before the timing; every request adds the seal to that copy.
// Printed beside raw C_Sign/s (bench/raw_sign, 1 and 2 threads) on the same token and keys,
// measured in the same run after the daemon has stopped, and the daemon's peak RSS (VmHWM).
//
// SoftHSM2 signs in hbsd's own process on the same two cores as everything else, so there the
// token's work and hbsd's compete for the CPU, and the ratios measure that. A signing device
// (HSM, smart card) does its work in hardware while the host waits. With --token-latency-ms N
// (default 5, 0 to skip) the RSA case is run again through tests/support/pkcs11-fault with
// "sign_delay_ms=N": every C_Sign waits N ms without using the CPU before SoftHSM2 signs, and
// the raw figures are taken through the same shim: what hbsd adds in front of such a token.
// Usage: bench_socket [--seconds S] [--token-latency-ms N]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/raw_sign.hpp"
#include "tests/daemon/harness.hpp"

using namespace hbsd;
using namespace hbsd::test;
namespace json = boost::json;

namespace {

using clock_type = std::chrono::steady_clock;

struct Case {
    const char* name;
    std::string key_label;
    std::string role;
    std::optional<std::string> subject;
    std::string document;
};

struct Figure {
    int clients = 0;
    long ok = 0;
    long failed = 0;
    double per_second = 0;
    double p50_ms = 0;
    double p99_ms = 0;
    long rss_kib = 0;  // VmHWM of hbsd after this configuration
};

long vm_hwm_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    const auto at = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(at), v.end());
    return v[at];
}

Figure run(Daemon& d, const Case& c, int clients, double seconds) {
    const std::string M = kSigner;
    // The harness caches these lookups without a lock: done here, before the threads.
    const auto key = d.key_uri(c.key_label);
    const auto token = d.token_uri();
    std::vector<std::vector<double>> lat(static_cast<std::size_t>(clients));
    std::vector<long> failed(static_cast<std::size_t>(clients), 0);
    std::mutex open_mutex;
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    clock_type::time_point end;
    std::vector<std::thread> threads;
    for (int i = 0; i < clients; ++i) {
        threads.emplace_back([&, i] {
            auto& mine = lat[static_cast<std::size_t>(i)];
            try {
                auto cl = d.client();
                // One OpenSession at a time: opened concurrently, logins of the same token
                // were refused with PinLocked (the PIN is right; see docs/performance.md).
                std::unique_lock one_at_a_time(open_mutex);
                const auto session =
                    std::string(cl.call(M + "OpenSession", {{"token", token}, {"pin", kPin}})
                                    .at("session")
                                    .as_string());
                const auto params = sign_params(session, key, c.role, c.document, c.subject);
                one_at_a_time.unlock();
                ++ready;
                while (!go.load()) std::this_thread::yield();
                for (;;) {
                    const auto t0 = clock_type::now();
                    if (t0 >= end) break;
                    try {
                        cl.call(M + "Sign", params);
                        mine.push_back(
                            std::chrono::duration<double, std::milli>(clock_type::now() - t0)
                                .count());
                    } catch (const protocol::ConnectionError&) {
                        throw;
                    } catch (const std::exception&) {
                        ++failed[static_cast<std::size_t>(i)];
                    }
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "bench_socket: client %d: %s\n", i, e.what());
                ++failed[static_cast<std::size_t>(i)];
                ++ready;
            }
        });
    }
    while (ready.load() < clients) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto start = clock_type::now();
    end = start +
          std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
    go = true;
    for (auto& t : threads) t.join();
    const double secs = std::chrono::duration<double>(clock_type::now() - start).count();

    Figure f;
    f.clients = clients;
    std::vector<double> all;
    for (std::size_t i = 0; i < lat.size(); ++i) {
        all.insert(all.end(), lat[i].begin(), lat[i].end());
        f.failed += failed[i];
    }
    f.ok = static_cast<long>(all.size());
    f.per_second = static_cast<double>(f.ok) / secs;
    f.p50_ms = percentile(all, 0.50);
    f.p99_ms = percentile(all, 0.99);
    f.rss_kib = vm_hwm_kib(d.pid());
    return f;
}

// The fixture with every stage before the school seal signed, over the socket.
std::string prepared_for_seal(Daemon& d) {
    const std::string M = kSigner;
    auto c = d.client();
    const auto session =
        std::string(c.call(M + "OpenSession", {{"token", d.token_uri()}, {"pin", kPin}})
                        .at("session")
                        .as_string());
    std::string doc = fixture();
    auto sign = [&](const std::string& label, const std::string& role,
                    std::optional<std::string> subject) {
        auto r = c.call(M + "Sign", sign_params(session, d.key_uri(label), role, doc, subject));
        doc = std::string(r.at("document").as_string());
    };
    for (const auto& s : kSubjects) sign("gvbm-" + s, "subject_teacher", s);
    sign("gvcn", "homeroom_teacher", std::nullopt);
    sign("ht", "principal", std::nullopt);
    return doc;
}

}  // namespace

// The RSA case against a token that takes `latency_ms` of device time per C_Sign.
void hardware_like(double seconds, int latency_ms) {
    const std::string delay = "sign_delay_ms=" + std::to_string(latency_ms) + "\n";
    std::vector<Figure> figures;
    std::string dir;
    {
        Daemon d(DaemonOptions().with_faults());
        d.set_faults(delay);
        const Case c{"RSA-2048", "gvbm-TOAN", "subject_teacher", "TOAN", fixture()};
        for (int n : {1, 8}) figures.push_back(run(d, c, n, seconds));
        d.terminate();
        ::setenv("SOFTHSM2_CONF", (d.dir() / "softhsm2.conf").c_str(), 1);
        ::setenv("HBSD_FAULT_REAL_MODULE", HBSD_SOFTHSM2_MODULE, 1);
        ::setenv("HBSD_FAULT_CONTROL", (d.dir() / "fault.control").c_str(), 1);
        const auto one = bench::raw_sign(HBSD_FAULT_MODULE, "hbsd-test", kPin, "gvbm-TOAN",
                                         bench::RawKind::rsa_pkcs1_sha256, 1, seconds);
        const auto two = bench::raw_sign(HBSD_FAULT_MODULE, "hbsd-test", kPin, "gvbm-TOAN",
                                         bench::RawKind::rsa_pkcs1_sha256, 2, seconds);
        std::printf(
            "\nThe same RSA-2048 Sign against a token with %d ms of device time per C_Sign "
            "(fault shim, sign_delay_ms):\n",
            latency_ms);
        std::printf("%-9s %7s %9s %8s %8s\n", "key", "clients", "signs/s", "p50 ms", "p99 ms");
        for (const auto& f : figures)
            std::printf("%-9s %7d %9.1f %8.2f %8.2f\n", "RSA-2048", f.clients, f.per_second,
                        f.p50_ms, f.p99_ms);
        std::printf(
            "raw through the same shim: 1 thread %.1f /s (one C_Sign %.2f ms), 2 threads %.1f /s\n",
            one.per_second, 1000.0 / one.per_second, two.per_second);
        std::printf("%-52s %8.0f%% %8s\n", "8 clients signs/s / raw 2-thread C_Sign/s",
                    100.0 * figures[1].per_second / two.per_second, ">= 80%");
        std::printf("%-52s %8.2fx %8s\n", "p99 at 1 client / one raw C_Sign",
                    figures[0].p99_ms / (1000.0 / one.per_second), "< 3x");
    }
}

int main(int argc, char** argv) {
    double seconds = 3.0;
    int latency_ms = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
        if (!std::strcmp(argv[i], "--token-latency-ms")) latency_ms = std::atoi(argv[i + 1]);
    }
    const int kClients[] = {1, 8, 64};
    try {
        // The harness's config: registry_checks off (as bench_batch), default limits
        // (max_inflight 64, worker_threads 4).
        Daemon d;
        std::vector<Case> cases;
        cases.push_back({"RSA-2048", "gvbm-TOAN", "subject_teacher", "TOAN", fixture()});
        cases.push_back({"P-256", "truong", "school", std::nullopt, prepared_for_seal(d)});

        std::vector<std::vector<Figure>> figures(cases.size());
        for (std::size_t k = 0; k < cases.size(); ++k)
            for (int n : kClients) figures[k].push_back(run(d, cases[k], n, seconds));
        const long rss_end_kib = vm_hwm_kib(d.pid());
        d.terminate();

        // The yardstick, same token and keys, the daemon gone.
        ::setenv("SOFTHSM2_CONF", (d.dir() / "softhsm2.conf").c_str(), 1);
        struct Raw {
            bench::RawSignResult one, two;
        };
        std::vector<Raw> raws;
        for (const auto& c : cases) {
            const auto kind =
                c.key_label == "truong" ? bench::RawKind::ecdsa : bench::RawKind::rsa_pkcs1_sha256;
            Raw r;
            r.one = bench::raw_sign(HBSD_SOFTHSM2_MODULE, "hbsd-test", kPin, c.key_label, kind, 1,
                                    seconds);
            r.two = bench::raw_sign(HBSD_SOFTHSM2_MODULE, "hbsd-test", kPin, c.key_label, kind, 2,
                                    seconds);
            raws.push_back(r);
        }

        std::printf(
            "hbsd socket benchmark: Sign over the Unix socket, %.1f s per figure, "
            "one connection and session per client\n\n",
            seconds);
        std::printf("%-9s %7s %9s %8s %8s %9s %6s\n", "key", "clients", "signs/s", "p50 ms",
                    "p99 ms", "RSS MiB", "fail");
        bool all_ok = true;
        for (std::size_t k = 0; k < cases.size(); ++k)
            for (const auto& f : figures[k]) {
                std::printf("%-9s %7d %9.1f %8.2f %8.2f %9.1f %6ld\n", cases[k].name, f.clients,
                            f.per_second, f.p50_ms, f.p99_ms, f.rss_kib / 1024.0, f.failed);
                all_ok = all_ok && f.failed == 0 && f.ok > 0;
            }
        std::printf("\n%-9s %13s %13s %13s %13s\n", "key", "raw 1thr /s", "raw 2thr /s",
                    "raw 1thr cpu/s", "1 C_Sign ms");
        for (std::size_t k = 0; k < cases.size(); ++k)
            std::printf("%-9s %13.1f %13.1f %14.1f %13.2f\n", cases[k].name, raws[k].one.per_second,
                        raws[k].two.per_second, raws[k].one.per_cpu_second,
                        1000.0 / raws[k].one.per_second);

        std::printf("\n%-52s %9s %8s\n", "ratio", "value", "target");
        for (std::size_t k = 0; k < cases.size(); ++k) {
            const auto& f = figures[k];
            const auto& r = raws[k];
            std::string n = cases[k].name;
            std::printf("%-52s %8.0f%% %8s\n",
                        (n + ": 8 clients signs/s / raw 2-thread C_Sign/s").c_str(),
                        100.0 * f[1].per_second / r.two.per_second, ">= 80%");
            std::printf("%-52s %8.2fx %8s\n", (n + ": p99 at 1 client / one raw C_Sign").c_str(),
                        f[0].p99_ms / (1000.0 / r.one.per_second), "< 3x");
        }
        const long rss64 = std::max(figures[0][2].rss_kib, figures[1][2].rss_kib);
        std::printf("%-52s %8.1f%% %8s\n", "peak RSS at 64 clients / 64 MiB",
                    100.0 * static_cast<double>(rss64) / (64.0 * 1024.0), "< 100%");
        std::printf("(hbsd peak RSS over the whole run: %.1f MiB)\n", rss_end_kib / 1024.0);
        if (latency_ms > 0) hardware_like(seconds, latency_ms);
        return all_ok ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_socket: %s\n", e.what());
        return 1;
    }
}
