// A SoftHSM2 token mapped in hbsd.toml to a vsmartcard-vpcd reader of a private pcscd
// (PcscRig): hbsd treats it as present only while an emulated card sits in that reader. So the
// card's insertion and removal drive ListTokens, the token events and the sessions on it, as a
// principal's smart card would.
#include "tests/cards/support.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/vcard/rig.hpp"

using namespace hbsd;
using namespace hbsd::test;
using namespace hbsd::test::cards;

namespace {

std::optional<json::object> listed(protocol::Client& c, const std::string& uri) {
    const auto reply = c.call(M("ListTokens"));
    for (const auto& t : reply.at("tokens").as_array())
        if (t.at("uri").as_string() == uri) return t.as_object();
    return std::nullopt;
}

DaemonOptions mapped_to(const PcscRig& rig) {
    DaemonOptions o;
    o.with_faults();  // only to slow C_Sign down, so that a card can leave mid-batch
    o.extra_config =
        "\n[[token_mapping]]\nreader = \"" + rig.reader(0) + "\"\nmodule = \"softhsm\"\n";
    return o;
}

}  // namespace

TEST_CASE("cards: insert, remove mid-batch, re-insert and finish the batch with a new PIN") {
    PcscRig rig;  // before the daemon: it inherits PCSCLITE_CSOCK_NAME
    Daemon d(mapped_to(rig));
    auto c = d.client();
    const auto token = d.token_uri();

    // No card in the mapped reader: the token is there for its module, not for hbsd.
    std::optional<json::object> t;
    for (int i = 0; i < 50; ++i) {
        t = listed(c, token);
        if (t && t->contains("reader") && t->at("reader").is_string()) break;
        std::this_thread::sleep_for(100ms);
    }
    REQUIRE(t);
    CHECK(t->at("reader").as_string() == rig.reader(0));
    CHECK(!t->at("present").as_bool());
    CHECK(error_of([&] { open_session(d, c); }).code() == Errc::TokenNotPresent);

    Watch w(d);
    settle();
    rig.insert(0, "4a01");
    const long inserted = w.wait_for("token_inserted", {}, 0, 15s);
    REQUIRE(inserted >= 0);
    CHECK(w.events()[static_cast<std::size_t>(inserted)].at("reader").as_string() == rig.reader(0));
    t = listed(c, token);
    REQUIRE(t);
    CHECK(t->at("present").as_bool());

    const auto session = open_session(d, c);
    const int n = 30;  // the card goes mid-batch however many items run side by side (<= 4)
    d.set_faults("sign_delay_ms=200\n");
    std::thread pull([&] {
        std::this_thread::sleep_for(700ms);
        rig.remove(0);
    });
    auto r = c.call(M("SignBatch"), batch_params(d, session, batch_items(n, "card-")));
    pull.join();
    const auto results = r.at("results").as_array();
    REQUIRE(results.size() == static_cast<std::size_t>(n));
    int ok = 0;
    for (const auto& v : results) {
        if (v.as_object().contains("document") && !v.at("document").is_null()) {
            ++ok;
            continue;
        }
        CHECK(v.at("error").as_string() == "vn.hocbaso.Signer.TokenNotPresent");
    }
    CHECK(ok >= 1);
    CHECK(ok < n);
    const long removed = w.wait_for("token_removed", {}, static_cast<std::size_t>(inserted));
    CHECK(removed > inserted);
    CHECK(w.wait_for("session_expired", "token_removed", static_cast<std::size_t>(inserted)) >
          inserted);
    // The session is over for good; the card's absence is visible.
    CHECK(error_of([&] {
              c.call(M("SignBatch"), batch_params(d, session, batch_items(1, "card-")));
          }).code() == Errc::SessionExpired);
    t = listed(c, token);
    REQUIRE(t);
    CHECK(!t->at("present").as_bool());
    CHECK(signatures_made(c) == ok);

    // Re-inserted: the PIN again, the same request ids; nothing is signed twice.
    d.set_faults("");
    rig.insert(0, "4a01");
    CHECK(w.wait_for("token_inserted", {}, static_cast<std::size_t>(removed), 15s) > removed);
    const auto again = open_session(d, c);
    auto r2 = c.call(M("SignBatch"), batch_params(d, again, batch_items(n, "card-")));
    const auto results2 = r2.at("results").as_array();
    REQUIRE(results2.size() == static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < results2.size(); ++i) {
        INFO("item " << i);
        REQUIRE(results2[i].as_object().contains("document"));
        CHECK(!results2[i].at("document").is_null());
        if (results[i].as_object().contains("document") && !results[i].at("document").is_null())
            CHECK(results2[i].at("document") == results[i].at("document"));
    }
    CHECK(signatures_made(c) == n);
}

TEST_CASE("cards: hbsd runs without pcscd and picks up the readers when it starts") {
    PcscRig rig(PcscRigOptions{.start = false});
    Daemon d(mapped_to(rig));
    auto c = d.client();
    const auto token = d.token_uri();
    // pcscd absent: the token is served as its module shows it.
    auto t = listed(c, token);
    REQUIRE(t);
    CHECK(t->at("present").as_bool());
    // Long enough for several reconnect attempts (and the refresher's look at them).
    std::this_thread::sleep_for(3500ms);
    rig.start_pcscd();
    // Once pcscd answers, the mapped reader (empty) decides.
    bool seen = false;
    for (int i = 0; i < 100 && !seen; ++i) {
        t = listed(c, token);
        seen = t && t->contains("reader") && t->at("reader").is_string() &&
               !t->at("present").as_bool();
        if (!seen) std::this_thread::sleep_for(100ms);
    }
    CHECK(seen);
    // Logged once, not once per retry, and the return too.
    const auto log = d.log();
    std::size_t count = 0;
    for (auto p = log.find("pcscd is not available"); p != std::string::npos;
         p = log.find("pcscd is not available", p + 1))
        ++count;
    CHECK(count == 1);
    CHECK(log.find("pcscd is available again") != std::string::npos);
}

namespace {

json::object open_params(const std::string& token, const std::string& pin) {
    return {{"token", token}, {"pin", pin}};
}

// The parameter an InvalidParameter names, or the error's wire name for any other outcome.
std::string refusal(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        if (e.code() == Errc::InvalidParameter && e.parameters().contains("parameter"))
            return "InvalidParameter " + std::string(e.parameters().at("parameter").as_string());
        return std::string(error_name(e.code()));
    }
    return "ok";
}

}  // namespace

TEST_CASE("cards: the PIN cache is bound to the uid and the card and dropped on removal") {
    PcscRig rig;
    auto o = mapped_to(rig);
    o.extra_config += "\n[pin_cache]\nenabled = true\nttl_s = 300\n";
    o.grant(kNobody, R"(["sign"])");
    Daemon d(o);
    auto c = d.client();
    const auto token = d.token_uri();
    Watch w(d);
    settle();
    rig.insert(0, "4a01");
    REQUIRE(w.wait_for("token_inserted", {}, 0, 15s) >= 0);

    // Nothing cached yet: refused before the token sees anything (no PIN try spent).
    CHECK(refusal([&] { c.call(M("OpenSession"), open_params(token, "")); }) ==
          "InvalidParameter pin");

    // The PIN typed once; the session closed; the next one opens with an empty PIN.
    const auto first = open_session(d, c);
    c.call(M("CloseSession"), {{"session", first}});
    const auto cached =
        std::string(c.call(M("OpenSession"), open_params(token, "")).at("session").as_string());
    CHECK(c.call(M("Sign"),
                 sign_params(cached, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(), "TOAN"))
              .contains("document"));
    c.call(M("CloseSession"), {{"session", cached}});
    // hbsctl --cached-pin sends the empty PIN.
    const auto run = run_hbsctl({"-s", d.socket(), "open-session", "-q", "--cached-pin", token});
    CHECK(run.code == 0);
    CHECK(run.out.size() == 33);

    // Another uid never gets it.
    const auto other = as_uid(kNobody, [&] {
        auto oc = protocol::Client::connect(d.socket());
        return refusal([&] { oc.call(M("OpenSession"), open_params(token, "")); });
    });
    CHECK(other == "InvalidParameter pin");

    // The PIN is nowhere to be seen: not in events, not in Status, not in the log.
    const std::string quoted = std::string("\"") + kPin + "\"";
    CHECK(json::serialize(c.call(M("Status"))).find(quoted) == std::string::npos);
    for (const auto& e : w.events()) CHECK(json::serialize(e).find(quoted) == std::string::npos);
    CHECK(d.log().find(quoted) == std::string::npos);
    CHECK(json::serialize(c.call(M("GetAuditLog"))).find(quoted) == std::string::npos);
    CHECK(d.log().find("pin_cache: enabled, a PIN is kept 300 s") != std::string::npos);
    const long cached_open = w.wait_for("session_opened", std::string("uid 0 (cached PIN)"));
    CHECK(cached_open >= 0);

    // The card leaves: the cached PIN goes with it, also once the card is back.
    const long before = static_cast<long>(w.events().size());
    rig.remove(0);
    const long removed = w.wait_for("token_removed", {}, static_cast<std::size_t>(before), 15s);
    REQUIRE(removed >= 0);
    CHECK(refusal([&] { c.call(M("OpenSession"), open_params(token, "")); }) ==
          "InvalidParameter pin");
    rig.insert(0, "4a01");
    REQUIRE(w.wait_for("token_inserted", {}, static_cast<std::size_t>(removed), 15s) > removed);
    CHECK(refusal([&] { c.call(M("OpenSession"), open_params(token, "")); }) ==
          "InvalidParameter pin");
    // Typed again, cached again.
    open_session(d, c);
    CHECK(refusal([&] { c.call(M("OpenSession"), open_params(token, "")); }) == "ok");

    // Pulled and put back, then straight to OpenSession: the watcher drops the entry on the
    // card_removed event itself, whatever the listings saw. (vpcd is polled: a card must stay
    // out until pcscd notices, as a real reader's interrupt would tell it at once.)
    auto seen = [&](const std::string& what) {
        const auto log = d.log();
        std::size_t n = 0;
        for (auto p = log.find(what); p != std::string::npos; p = log.find(what, p + 1)) ++n;
        return n;
    };
    auto wait_seen = [&](const std::string& what, std::size_t before) {
        for (int i = 0; i < 150 && seen(what) == before; ++i) std::this_thread::sleep_for(100ms);
        return seen(what) > before;
    };
    const auto removals = seen("pcsc: card_removed"), insertions = seen("pcsc: card_inserted");
    rig.remove(0);
    REQUIRE(wait_seen("pcsc: card_removed", removals));
    rig.insert(0, "4a01");
    REQUIRE(wait_seen("pcsc: card_inserted", insertions));
    CHECK(refusal([&] { c.call(M("OpenSession"), open_params(token, "")); }) ==
          "InvalidParameter pin");

    // The explicit drop: ForgetPins (hbsctl forget-pins).
    open_session(d, c);
    const auto forget = run_hbsctl({"-s", d.socket(), "forget-pins"});
    CHECK(forget.code == 0);
    CHECK(forget.out.find("forgot 1 PIN") != std::string::npos);
    CHECK(refusal([&] { c.call(M("OpenSession"), open_params(token, "")); }) ==
          "InvalidParameter pin");
}
