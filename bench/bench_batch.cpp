// Principal's batch benchmark (issue 5: "a 1,500-record principal batch: records/s and the
// ratio to raw C_Sign/s on the same token").
//
// 1. Preparation (timed apart, not part of the figure): N records made from the fixture (the
//    record code changed per student, so every Id differs), each signed in this process up to
//    the homeroom stage - 12 subject teachers and the homeroom teacher, 13 signatures each -
//    with dsig/ and hsm/ on a copy of the daemon's token, as bench_sign does, on two threads.
// 2. The principal's batch: the real hbsd (tests/daemon/harness) over its Unix socket, ONE
//    OpenSession (one PIN entry), then SignBatch of the principal stage in chunks as
//    `hbsctl sign-batch` makes them, with a WatchEvents watcher reading the `signed` events the
//    whole time. Each item verifies the 13 earlier signatures, adds the principal's, and is
//    committed to the store before its reply.
// 3. The subject-teacher batch of the same N records (the figure earlier versions printed).
// 4. Raw C_Sign/s on the same token and key (bench/raw_sign), after hbsd has stopped.
// Usage: bench_batch [--records N] [--chunk N] [--no-teacher]
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "bench/raw_sign.hpp"
#include "dsig/document.hpp"
#include "hsm/token_manager.hpp"
#include "policies/order.hpp"
#include "tests/daemon/harness.hpp"

using namespace hbsd;
using namespace hbsd::test;
namespace json = boost::json;
using dsig::Stage;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// The N records signed through the homeroom stage, in process, on a copy of the token
// template (the daemon gets its own copy of the same keys).
std::vector<std::string> prepare(int records, const fs::path& dir) {
    std::system(("cp -a '" + (token_template_dir() / "tokens").string() + "' '" +
                 (dir / "tokens").string() + "'")
                    .c_str());
    write_file(dir / "softhsm2.conf", "directories.tokendir = " + (dir / "tokens").string() +
                                          "\nobjectstore.backend = file\nlog.level = ERROR\n");
    ::setenv("SOFTHSM2_CONF", (dir / "softhsm2.conf").c_str(), 1);

    std::vector<std::string> docs(static_cast<std::size_t>(records));
    hsm::TokenManager tm(std::vector<hsm::ModuleConfig>{{"softhsm", HBSD_SOFTHSM2_MODULE}});
    std::string token_uri;
    for (const auto& t : tm.list_tokens())
        if (t.label == "hbsd-test") token_uri = t.uri;
    auto login = tm.login(token_uri, kPin);
    const auto keys = tm.list_keys(token_uri);
    auto signer = [&](const std::string& label) {
        std::string uri;
        for (const auto& k : keys)
            if (k.label == label) uri = k.uri;
        const auto key = tm.find_key(login, uri);
        return dsig::Signer{key.certificate_der,
                            [&tm, &login, uri](std::span<const unsigned char> d) {
                                return tm.sign(login, uri, hsm::Mechanism::rsa_pkcs1_sha256, d);
                            }};
    };
    const auto subjects = dsig::Document::parse(fixture()).year(kYear)->subjects;
    std::vector<std::pair<std::string, dsig::Signer>> teachers;
    for (const auto& s : subjects) teachers.emplace_back(s, signer("gvbm-" + s));
    const auto homeroom = signer("gvcn");

    std::atomic<int> next{0};
    std::mutex failure_mu;
    std::string failure;
    auto work = [&] {
        try {
            for (int i; (i = next++) < records;) {
                auto doc = dsig::Document::parse(fixture_student(i + 1));
                for (const auto& [s, sig] : teachers) {
                    const std::string_view sv = s;
                    doc.add_signature(Stage::subject_teacher, kYear, sv, sig,
                                      std::chrono::system_clock::now());
                }
                doc.add_signature(Stage::homeroom_teacher, kYear, std::nullopt, homeroom,
                                  std::chrono::system_clock::now());
                std::string xml = doc.serialize();
                // Once, as the daemon will for each: the record passes the principal's check.
                if (i == 0)
                    policies::check_order(dsig::Document::parse(xml), Stage::principal, kYear,
                                          std::nullopt);
                docs[static_cast<std::size_t>(i)] = std::move(xml);
            }
        } catch (const std::exception& e) {
            std::lock_guard lock(failure_mu);
            failure = e.what();
            next = records;
        }
    };
    std::thread t1(work), t2(work);
    t1.join();
    t2.join();
    if (!failure.empty()) throw std::runtime_error("preparing the records: " + failure);
    return docs;
}

struct BatchRun {
    long ok = 0;
    double seconds = 0;
    long events = 0;
};

// One PIN entry, then SignBatch in chunks over the socket, with a live watcher.
BatchRun run_batch(Daemon& d, const std::vector<std::string>& docs, int chunk,
                   const std::string& role, const std::string& key,
                   std::optional<std::string> subject, const std::string& prefix) {
    const std::string M = kSigner;
    auto c = d.client();
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
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto session =
        std::string(c.call(M + "OpenSession", {{"token", d.token_uri()}, {"pin", kPin}})
                        .at("session")
                        .as_string());
    BatchRun run;
    const auto start = Clock::now();
    const int records = static_cast<int>(docs.size());
    for (int at = 0; at < records; at += chunk) {
        json::array items;
        for (int i = at; i < std::min(records, at + chunk); ++i)
            items.push_back(json::object{{"document", docs[static_cast<std::size_t>(i)]},
                                         {"request_id", prefix + std::to_string(i)}});
        json::object p{{"session", session},
                       {"key", key},
                       {"role", role},
                       {"year", kYear},
                       {"items", std::move(items)}};
        if (subject) p["subject"] = *subject;
        auto r = c.call(M + "SignBatch", std::move(p));
        for (const auto& v : r.at("results").as_array())
            run.ok += v.as_object().contains("document") && !v.at("document").is_null();
    }
    run.seconds = since(start);
    c.call(M + "CloseSession", {{"session", session}});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    ::shutdown(watch_client.native_handle(), SHUT_RDWR);
    watcher.join();
    run.events = signed_events.load();
    return run;
}

}  // namespace

int main(int argc, char** argv) {
    int records = 1500;
    int chunk = 100;
    bool teacher = true;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--records") && i + 1 < argc)
            records = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--chunk") && i + 1 < argc)
            chunk = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--no-teacher"))
            teacher = false;
        else {
            std::fprintf(stderr, "usage: bench_batch [--records N] [--chunk N] [--no-teacher]\n");
            return 2;
        }
    }
    try {
        std::string pattern = (fs::temp_directory_path() / "hbsd-bench-batch-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        const fs::path dir = pattern;

        const auto prep_start = Clock::now();
        const auto docs = prepare(records, dir);
        const double prep_secs = since(prep_start);
        std::size_t bytes = 0;
        for (const auto& x : docs) bytes += x.size();

        Daemon d(DaemonOptions().limit("max_batch_items", chunk));
        const auto principal =
            run_batch(d, docs, chunk, "principal", d.key_uri("ht"), std::nullopt, "ht-");
        BatchRun teacher_run;
        if (teacher) {
            std::vector<std::string> plain;
            plain.reserve(docs.size());
            for (int i = 1; i <= records; ++i) plain.push_back(fixture_student(i));
            teacher_run = run_batch(d, plain, chunk, "subject_teacher", d.key_uri("gvbm-TOAN"),
                                    "TOAN", "gvbm-");
        }
        d.terminate();

        // The yardstick: C_Sign alone on the same token and the principal's key (the daemon is
        // gone; one thread, as one SignBatch signs one item after the other).
        ::setenv("SOFTHSM2_CONF", (d.dir() / "softhsm2.conf").c_str(), 1);
        const auto raw = bench::raw_sign(HBSD_SOFTHSM2_MODULE, "hbsd-test", kPin, "ht",
                                         bench::RawKind::rsa_pkcs1_sha256, 1, 3.0);
        fs::remove_all(dir);

        const double rate = principal.ok / principal.seconds;
        std::printf(
            "preparation (in process, 2 threads): %d records x 13 signatures "
            "(12 subject teachers + homeroom) in %.1f s, %.0f KiB per record\n",
            records, prep_secs, bytes / 1024.0 / std::max(records, 1));
        std::printf("\nprincipal batch: one OpenSession, SignBatch chunks of %d over the socket\n",
                    chunk);
        std::printf("records signed          %ld of %d\n", principal.ok, records);
        std::printf("signed events watched   %ld\n", principal.events);
        std::printf("wall time               %.2f s\n", principal.seconds);
        std::printf("records/s               %.1f\n", rate);
        std::printf("raw C_Sign/s (RSA-2048) %.1f (key ht, same token, 1 thread)\n",
                    raw.per_second);
        std::printf("ratio                   %.1f %%\n", 100.0 * rate / raw.per_second);
        if (teacher) {
            const double trate = teacher_run.ok / teacher_run.seconds;
            std::printf("\nsubject-teacher batch (TOAN) of the same records, for comparison\n");
            std::printf("records signed          %ld of %d in %.2f s\n", teacher_run.ok, records,
                        teacher_run.seconds);
            std::printf("records/s               %.1f (ratio %.1f %%)\n", trate,
                        100.0 * trate / raw.per_second);
        }
        const bool all = principal.ok == records && (!teacher || teacher_run.ok == records);
        return all ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_batch: %s\n", e.what());
        return 1;
    }
}
