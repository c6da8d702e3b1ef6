// WatchEvents and token resilience through the real daemon: the event bus (several watchers,
// token/session/signed events), and recovery from a removed token, dead sessions and a
// restarted module, driven by the PKCS#11 fault shim in front of SoftHSM2.
#include "tests/cards/support.hpp"
#include "tests/support/catch.hpp"

using namespace hbsd;
using namespace hbsd::test;
using namespace hbsd::test::cards;
using namespace std::chrono_literals;
namespace json = boost::json;

TEST_CASE("events: every watcher sees session_opened, signed and session_closed") {
    Daemon d;
    Watch w1(d), w2(d);
    settle();
    auto c = d.client();
    const auto session = open_session(d, c);
    c.call(M("Sign"),
           sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(), "TOAN"));
    c.call(M("CloseSession"), {{"session", session}});
    for (Watch* w : {&w1, &w2}) {
        const long opened = w->wait_for("session_opened");
        REQUIRE(opened >= 0);
        const long signed_at = w->wait_for("signed", {}, static_cast<std::size_t>(opened));
        REQUIRE(signed_at > opened);
        const long closed = w->wait_for("session_closed", {}, static_cast<std::size_t>(signed_at));
        CHECK(closed > signed_at);
        const auto e = w->events()[static_cast<std::size_t>(opened)];
        CHECK(e.at("token").as_string() == d.token_uri());
        CHECK(e.at("time").as_string().size() == 20);
        // The session id is a bearer secret of its owner: never in an event.
        for (const auto& ev : w->events())
            CHECK(json::serialize(ev).find(session) == std::string::npos);
        CHECK(w->events()[static_cast<std::size_t>(signed_at)].at("record").as_string() ==
              kFixtureRecord);
    }
}

TEST_CASE("events: a watcher takes no worker; signing goes on while many watch") {
    // Two workers, eight watchers: if watchers held workers, Status below would be Busy/hang.
    Daemon d(DaemonOptions().limit("worker_threads", 2).limit("max_inflight", 2));
    std::vector<std::unique_ptr<Watch>> watchers;
    for (int i = 0; i < 8; ++i) watchers.push_back(std::make_unique<Watch>(d));
    settle();
    auto c = d.client();
    const auto session = open_session(d, c);
    c.call(M("Sign"),
           sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(), "TOAN"));
    for (auto& w : watchers) CHECK(w->wait_for("signed") >= 0);
}

TEST_CASE("events: WatchEvents refuses parameters and calls without more") {
    Daemon d;
    auto c = d.client();
    CHECK(error_of([&] { c.call(M("WatchEvents")); }).code() == Errc::ExpectedMore);
}

TEST_CASE("resilience: token removed and put back - events, sessions end, a new PIN works") {
    Daemon d(DaemonOptions().with_faults());
    const auto token = d.token_uri();
    Watch w(d);
    settle();
    auto c = d.client();
    const auto session = open_session(d, c);
    const auto key = d.key_uri("gvbm-TOAN");  // looked up while the token is there
    d.set_faults("token_present=0\n");
    const long removed = w.wait_for("token_removed");
    REQUIRE(removed >= 0);
    CHECK(w.events()[static_cast<std::size_t>(removed)].at("token").as_string() == token);
    CHECK(w.wait_for("session_expired", "token_removed", static_cast<std::size_t>(removed)) >
          removed);
    CHECK(error_of([&] {
              c.call(M("Sign"), sign_params(session, key, "subject_teacher", fixture(), "TOAN"));
          }).code() == Errc::SessionExpired);
    const auto listed = c.call(M("ListTokens")).at("tokens").as_array();
    bool seen_absent = false;
    for (const auto& t : listed)
        if (t.at("uri").as_string() == token) seen_absent = !t.at("present").as_bool();
    CHECK(seen_absent);

    d.set_faults("");
    CHECK(w.wait_for("token_inserted", {}, static_cast<std::size_t>(removed)) > removed);
    // The old session stays ended; a new PIN entry opens a new one.
    const auto again = open_session(d, c);
    CHECK(c.call(M("Sign"),
                 sign_params(again, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(), "TOAN"))
              .contains("document"));
}

namespace {

// Runs a batch whose C_Sign fails with `rv` from about half a second in; checks that the items
// that could not be signed are TokenNotPresent, that the session ended, and that a retry with
// the same request ids after a new login completes the batch with nothing signed twice.
// `restart`: the fault is a crashed HSM that stays in the control file; the daemon must
// re-initialise the module by itself (token_inserted tells when) before the retry.
void removed_mid_batch(const std::string& fault, bool restart = false) {
    Daemon d(DaemonOptions().with_faults());
    Watch w(d);
    settle();
    auto c = d.client();
    const auto session = open_session(d, c);
    // Slow enough, and long enough, that the fault lands mid-batch however many items the
    // daemon signs side by side (SignBatch lanes: up to 4).
    const int n = 24;
    d.set_faults("sign_delay_ms=150\n");
    json::array first;
    std::thread pull([&] {
        std::this_thread::sleep_for(500ms);
        d.set_faults(fault);
    });
    auto r = c.call(M("SignBatch"), batch_params(d, session, batch_items(n, "req-")));
    pull.join();
    const auto& results = r.at("results").as_array();
    REQUIRE(results.size() == static_cast<std::size_t>(n));
    int ok = 0;
    for (const auto& v : results) {
        const auto& o = v.as_object();
        if (o.contains("document") && !o.at("document").is_null()) {
            ++ok;
            continue;
        }
        // The item that met the fault and every one after it: the token is not there.
        CHECK(o.at("error").as_string() == "vn.hocbaso.Signer.TokenNotPresent");
    }
    CHECK(ok >= 1);
    CHECK(ok < n);
    bool first_failure_token = false;
    for (const auto& v : results)
        if (v.as_object().contains("error") && !v.at("error").is_null()) {
            first_failure_token = v.at("error").as_string() == "vn.hocbaso.Signer.TokenNotPresent";
            break;
        }
    CHECK(first_failure_token);
    CHECK(w.wait_for("session_expired", "token_removed") >= 0);
    const auto made_before = signatures_made(c);
    CHECK(made_before == ok);

    std::string again;
    if (restart) {
        // The daemon re-initialises the module within a second or two of noticing.
        for (int i = 0; i < 60 && again.empty(); ++i) {
            try {
                again = open_session(d, c);
            } catch (const Error& e) {
                CHECK((e.code() == Errc::TokenNotPresent || e.code() == Errc::TokenNotFound ||
                       e.code() == Errc::Internal));
                std::this_thread::sleep_for(250ms);
            }
        }
        REQUIRE(!again.empty());
    } else {
        d.set_faults("");
        // Re-inserted: a new PIN, the same request ids.
        again = open_session(d, c);
    }
    auto r2 = c.call(M("SignBatch"), batch_params(d, again, batch_items(n, "req-")));
    const auto& results2 = r2.at("results").as_array();
    REQUIRE(results2.size() == static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < results2.size(); ++i) {
        INFO("item " << i);
        CHECK(results2[i].as_object().contains("document"));
        CHECK(!results2[i].at("document").is_null());
        // The items signed the first time come back as they were.
        if (results[i].as_object().contains("document") && !results[i].at("document").is_null())
            CHECK(results2[i].at("document") == results[i].at("document"));
    }
    // Nothing signed twice: exactly n signatures in all.
    CHECK(signatures_made(c) == n);
}

}  // namespace

TEST_CASE("resilience: token removed mid-batch (CKR_DEVICE_REMOVED), retried after re-insertion") {
    removed_mid_batch("sign=CKR_DEVICE_REMOVED\ntoken_present=0\n");
}

TEST_CASE("resilience: sessions invalidated mid-batch (CKR_SESSION_HANDLE_INVALID)") {
    removed_mid_batch("sign=CKR_SESSION_HANDLE_INVALID\n");
}

TEST_CASE("resilience: CKR_TOKEN_NOT_PRESENT on C_Sign mid-batch") {
    removed_mid_batch("sign=CKR_TOKEN_NOT_PRESENT\ntoken_present=0\n");
}

TEST_CASE(
    "resilience: an HSM restarted mid-batch (every call CKR_DEVICE_ERROR until "
    "re-initialised) recovers without restarting hbsd") {
    removed_mid_batch("restart_needed=CKR_DEVICE_ERROR,1\n", true);
}

TEST_CASE("resilience: a module that lost its state (CKR_CRYPTOKI_NOT_INITIALIZED) recovers") {
    removed_mid_batch("restart_needed=CKR_CRYPTOKI_NOT_INITIALIZED,1\n", true);
}

TEST_CASE("resilience: a slow token delays only its own signatures, events keep flowing") {
    Daemon d(DaemonOptions().with_faults());
    Watch w(d);
    settle();
    auto c = d.client();
    const auto session = open_session(d, c);
    d.set_faults("sign_delay_ms=1500\n");
    std::thread slow([&] {
        auto c2 = d.client();
        c2.call(M("Sign"),
                sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(), "TOAN"));
    });
    std::this_thread::sleep_for(200ms);
    // While the signature waits on the token, another caller's session opens and is announced.
    auto c3 = d.client();
    const auto t0 = std::chrono::steady_clock::now();
    const auto other = open_session(d, c3);
    const long opened = w.wait_for("session_opened", {}, 1);
    CHECK(opened >= 1);
    CHECK(std::chrono::steady_clock::now() - t0 < 1300ms);
    slow.join();
    CHECK(w.wait_for("signed") >= 0);
    c3.call(M("CloseSession"), {{"session", other}});
}

TEST_CASE("events: hbsctl watch prints the events live, as text and as JSON") {
    Daemon d;
    Run text, js;
    std::thread t1([&] { text = run_hbsctl({"-s", d.socket(), "watch", "-n", "2"}); });
    std::thread t2([&] { js = run_hbsctl({"-s", d.socket(), "--json", "watch", "-n", "2"}); });
    settle();
    auto c = d.client();
    const auto session = open_session(d, c);
    c.call(M("CloseSession"), {{"session", session}});
    t1.join();
    t2.join();
    CHECK(text.code == 0);
    CHECK(text.out.find("session_opened") != std::string::npos);
    CHECK(text.out.find("session_closed") != std::string::npos);
    CHECK(text.out.find("token=" + d.token_uri()) != std::string::npos);
    CHECK(js.code == 0);
    const auto first = json::parse(js.out.substr(0, js.out.find('\n'))).as_object();
    CHECK(first.at("kind").as_string() == "session_opened");
    CHECK(first.at("token").as_string() == d.token_uri());
}

TEST_CASE("events: an HSM restarted between two listings is token_removed, then token_inserted") {
    auto o = DaemonOptions().with_faults();
    o.extra_config = "\n[pin_cache]\nenabled = true\n";
    Daemon d(o);
    const auto token = d.token_uri();
    Watch w(d);
    settle();
    auto c = d.client();
    const auto session = open_session(d, c);
    c.call(M("ListTokens"));
    // The module crashes and is re-initialised by the next listing, which then finds the token
    // present again: present at both looks, yet another life of the token.
    d.set_faults("restart_needed=CKR_DEVICE_ERROR,1\n");
    c.call(M("ListTokens"));
    const long removed = w.wait_for("token_removed");
    REQUIRE(removed >= 0);
    CHECK(w.events()[static_cast<std::size_t>(removed)].at("token").as_string() == token);
    const long inserted = w.wait_for("token_inserted", {}, static_cast<std::size_t>(removed));
    CHECK(inserted > removed);
    CHECK(w.events()[static_cast<std::size_t>(inserted)].at("token").as_string() == token);
    // The session on its earlier life ended with it.
    CHECK(w.wait_for("session_expired", "token_removed") >= 0);
    CHECK(error_of([&] {
              c.call(M("Sign"), sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher",
                                            fixture(), "TOAN"));
          }).code() == Errc::SessionExpired);
    // Its cached PIN went too: the new life needs the PIN typed again.
    const auto e = error_of([&] { c.call(M("OpenSession"), {{"token", token}, {"pin", ""}}); });
    CHECK(e.code() == Errc::InvalidParameter);
    CHECK(e.parameters().at("parameter").as_string() == "pin");
    const auto again = open_session(d, c);
    CHECK(c.call(M("Sign"),
                 sign_params(again, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(), "TOAN"))
              .contains("document"));
    // Once only: later listings of the same life are no news.
    c.call(M("ListTokens"));
    std::this_thread::sleep_for(300ms);
    CHECK(w.count("token_removed") == 1);
    CHECK(w.count("token_inserted") == 1);
}

TEST_CASE("pin cache: an empty PIN with nothing cached never reaches the token") {
    // Disabled (the default), and enabled with nothing cached: InvalidParameter pin. The fault
    // module would answer any C_Login with CKR_PIN_LOCKED, so a PinLocked would show a try.
    for (const bool enabled : {false, true}) {
        INFO("enabled " << enabled);
        auto o = DaemonOptions().with_faults();
        if (enabled) o.extra_config = "\n[pin_cache]\nenabled = true\n";
        Daemon d(o);
        auto c = d.client();
        d.set_faults("login=CKR_PIN_LOCKED\n");
        const auto e = error_of([&] {
            c.call(M("OpenSession"), {{"token", d.token_uri()}, {"pin", ""}});
        });
        CHECK(e.code() == Errc::InvalidParameter);
        CHECK(e.parameters().at("parameter").as_string() == "pin");
        d.set_faults("");
        if (!enabled) {
            // Even after a PIN was typed: nothing is remembered.
            const auto s = open_session(d, c);
            c.call(M("CloseSession"), {{"session", s}});
            CHECK(error_of([&] {
                      c.call(M("OpenSession"), {{"token", d.token_uri()}, {"pin", ""}});
                  }).code() == Errc::InvalidParameter);
        }
    }
}

TEST_CASE("pin cache: a cached PIN the token refuses is dropped and never tried twice") {
    auto o = DaemonOptions().with_faults();
    o.extra_config = "\n[pin_cache]\nenabled = true\n";
    Daemon d(o);
    auto c = d.client();
    const auto token = d.token_uri();
    const auto s = open_session(d, c);
    c.call(M("CloseSession"), {{"session", s}});  // logged out: the next login asks the token
    // The PIN was changed behind hbsd's back.
    d.set_faults("login=CKR_PIN_INCORRECT\n");
    CHECK(error_of([&] {
              c.call(M("OpenSession"), {{"token", token}, {"pin", ""}});
          }).code() == Errc::PinIncorrect);
    d.set_faults("");
    const auto e = error_of([&] { c.call(M("OpenSession"), {{"token", token}, {"pin", ""}}); });
    CHECK(e.code() == Errc::InvalidParameter);
    CHECK(e.parameters().at("parameter").as_string() == "pin");
    open_session(d, c);
    CHECK(c.call(M("OpenSession"), {{"token", token}, {"pin", ""}}).contains("session"));
}
