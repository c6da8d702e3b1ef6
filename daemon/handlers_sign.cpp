// Sign and SignBatch.
//
// What is checked once per call (session, key, the key's certificate and its trust) is in
// KeyContext; what is done per document (idempotency, order and registry policy, the signature
// itself, its commit to the store) is in sign_one, so that a batch item fails alone.
//
// Nothing leaves before store.commit_signature has written the archive copy, the record state,
// the audit entry and the request id in one transaction (DESIGN.md, "Storage, audit, nothing
// lost"); a refusal is audited too, with the document's hash and never its body.
#include "daemon/audit_hook.hpp"
#include "daemon/handlers.hpp"
#include "daemon/handlers_common.hpp"
#include "daemon/log.hpp"
#include "daemon/openssl_handles.hpp"
#include "policies/order.hpp"
#include "policies/registry.hpp"
#include "protocol/hex.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace hbsd::daemon::handlers {
namespace json = boost::json;

namespace {

struct What {
    std::string key;
    dsig::Stage stage;
    std::string year;
    std::optional<std::string> subject;
};

struct KeyContext {
    SessionTable::Lease lease;
    hsm::KeyInfo key;
    hsm::Mechanism mechanism;
};

What read_what(Request& r) {
    What w;
    w.key = r.params.string("key");
    const auto role = r.params.enumeration(
        "role", {"subject_teacher", "homeroom_teacher", "principal", "school"});
    w.stage = *dsig::stage_from_string(role);
    w.year = r.params.string("year");
    w.subject = r.params.opt_string("subject");
    // The subject names the MonHoc of a subject teacher's signature and nothing else.
    if ((w.stage == dsig::Stage::subject_teacher) != w.subject.has_value())
        throw Error::invalid_parameter("subject");
    return w;
}

// The certificate beside the key decides the mechanism; the key's own attributes could
// disagree with what a verifier will read from KeyInfo. (hsm/ read the certificate's key type
// when it found the key, once per login.)
hsm::Mechanism mechanism_for(const hsm::KeyInfo& key) {
    if (!key.certificate_algorithm)
        throw Error::policy("wrong_key",
                            "the certificate beside the key is not valid DER, or its key is "
                            "neither RSA nor EC");
    return *key.certificate_algorithm == hsm::KeyAlgorithm::rsa ? hsm::Mechanism::rsa_pkcs1_sha256
                                                                : hsm::Mechanism::ecdsa_sha256;
}

bool registry_on(const Services& s, const Request& r) {
    return s.store && r.config->registry_checks;
}

// `fingerprint` receives the certificate's as soon as the key is found, so that a refusal of
// that certificate (untrusted, wrong key type) can be audited with it.
KeyContext key_context(Services& s, Request& r, const std::string& session, const What& w,
                       std::optional<std::string>& fingerprint) {
    auto lease = s.sessions.lease(r.caller.uid, session, r.call.method);
    hsm::KeyInfo key = s.tokens->find_key(*lease.login, w.key);
    fingerprint = key.fingerprint;
    if (key.certificate_der.empty())
        throw Error::policy("wrong_key", "no certificate is stored beside the key");
    // With the registry on, trust is one of its checks, reported in its order (an unregistered
    // certificate is not_registered before it is anything else).
    if (!registry_on(s, r))
        if (auto why =
                trust_problem(r.trust, key.certificate_der, std::chrono::system_clock::now()))
            throw Error::policy("untrusted_certificate", *why);
    const auto mech = mechanism_for(key);
    return {std::move(lease), std::move(key), mech};
}

// Hash of everything that makes two requests the same request (not the session: a retry may
// come with a new session after the first one expired).
std::string request_digest(const What& w, std::string_view document) {
    EvpMdCtx ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
        throw Error::internal("EVP_DigestInit_ex");
    auto field = [&](std::string_view f) {
        const std::uint64_t n = f.size();
        EVP_DigestUpdate(ctx.get(), &n, sizeof n);  // length-prefixed: no two field lists collide
        EVP_DigestUpdate(ctx.get(), f.data(), f.size());
    };
    field(w.key);
    field(dsig::to_string(w.stage));
    field(w.year);
    field(w.subject.value_or(""));
    field(document);
    std::array<unsigned char, 32> md{};
    unsigned len = 0;
    if (EVP_DigestFinal_ex(ctx.get(), md.data(), &len) != 1)
        throw Error::internal("EVP_DigestFinal_ex");
    return to_hex(md);
}

// "Sign" or "SignBatch", for refusals.
std::string method_name(const Request& r) {
    return std::string(protocol::split_method(r.call.method).second);
}

// The method kept with a request id (and on the audit entry of a signature): "Sign" for a
// batch item too, because a request id names one signature whichever call carried it (a
// SignBatch item may retry a Sign and vice versa); the entry's detail says it was a batch.
constexpr std::string_view kSignMethod = "Sign";

// Runs `make(digest)` at most once per (uid, request_id): a retry gets the stored reply, a
// concurrent retry waits for the first attempt. Without a request_id, just runs it. With a
// store, `make` commits the request id with the signature, so a retry after a crash or
// restart finds it too.
template <class Make>
json::object idempotent(Services& s, Request& r, const What& w, const std::string& document,
                        const std::optional<std::string>& request_id, Make&& make) {
    if (!request_id) return make(std::string());
    if (request_id->empty() || request_id->size() > 256)
        throw Error::invalid_parameter("request_id");
    const std::string digest = request_digest(w, document);
    auto hold = s.requests.enter(r.caller.uid, *request_id);
    if (s.store) {
        if (auto done = s.store->replay(r.caller.uid, *request_id, kSignMethod, digest)) {
            const auto* sig = done->result.is_object()
                                  ? done->result.as_object().if_contains("signature")
                                  : nullptr;
            if (!sig) throw Error::internal("stored result without a signature");
            return {{"document", std::string(done->document.begin(), done->document.end())},
                    {"signature", *sig},
                    {"audit_seq", done->audit_seq}};
        }
        return make(digest);
    }
    if (auto done = s.idempotency->find(r.caller.uid, *request_id, digest)) return *done;
    json::object reply = make(digest);
    s.idempotency->remember(r.caller.uid, *request_id, digest, reply);
    return reply;
}

// What the audit can say about a refused document without holding it.
store::AuditInput refusal_context(const What& w, const std::string& document,
                                  const std::optional<std::string>& fingerprint) {
    store::AuditInput a;
    a.role = std::string(dsig::to_string(w.stage));
    a.fingerprint = fingerprint;
    try {
        a.document_before = sha256_hex(document);
    } catch (...) {
    }
    if (w.subject) a.detail = "subject " + *w.subject;
    return a;
}

json::object sign_one(Services& s, Request& r, const std::string& session, const What& w,
                      const KeyContext& kc, const std::string& document,
                      const std::optional<std::string>& request_id, const std::string& digest,
                      const std::string& progress = {}) {
    auto ticket = s.sessions.reserve_signature(r.caller.uid, session, r.call.method);
    const auto& limits = r.config->limits;
    auto doc = dsig::Document::parse(
        document, dsig::Limits{limits.max_document_bytes, static_cast<int>(limits.max_depth)});
    std::optional<std::string_view> subject;
    if (w.subject) subject = *w.subject;
    policies::check_order(doc, w.stage, w.year, subject);

    // Copied now: add_signature rebuilds the year reports.
    const dsig::YearReport year_report = *doc.year(w.year);
    const std::string record = doc.record();
    if (registry_on(s, r)) {
        const auto& trust = r.trust;
        if (!trust) throw Error::policy("untrusted_certificate", "no trust anchors configured");
        const policies::Registry registry(*s.store, trust);
        registry.check_signing(policies::SigningRequest::from(year_report, record, w.stage, subject,
                                                              kc.key.certificate_der),
                               std::chrono::system_clock::now());
    }

    dsig::Signer signer{
        kc.key.certificate_der, [&](std::span<const unsigned char> md) {
            try {
                return s.tokens->sign(*kc.lease.login, kc.key.uri, kc.mechanism, md);
            } catch (const Error& e) {
                if (e.code() == Errc::TokenNotPresent) {
                    s.sessions.end_token(kc.lease.token_uri);
                    s.pin_cache.drop_incarnation(kc.lease.token_uri, kc.lease.login->incarnation());
                }
                throw;
            }
        }};
    const auto report =
        doc.add_signature(w.stage, w.year, subject, signer, std::chrono::system_clock::now());
    std::string out = doc.serialize();
    const auto now = std::chrono::system_clock::now();
    auto info = to_wire(report, r.trust, now);
    if (registry_on(s, r)) {
        // check_signing passed a moment ago at hbsd's clock: registered, approved, assigned and
        // trusted. Asking the registry again would only repeat the chain validation.
        info.trusted = info.registered = true;
        info.problems = report.problems;
    }
    json::value signature = json::value_from(info);
    std::int64_t seq = 0;
    if (s.store) {
        store::SignatureCommit c;
        c.uid = r.caller.uid;
        c.request_id = request_id;
        c.method = std::string(kSignMethod);
        c.request_hash = digest;
        c.document_before_sha = sha256_hex(document);
        c.document_after.assign(out.begin(), out.end());
        c.record = record;
        c.school = year_report.school;
        c.year = w.year;
        c.role = std::string(dsig::to_string(w.stage));
        c.fingerprint = report.fingerprint;
        c.signature_value_sha = report.signature_value_sha256;
        c.issues_year = w.stage == dsig::Stage::school;
        c.result = json::object{{"signature", signature}};
        if (w.subject) c.detail = "subject " + *w.subject;
        if (method_name(r) != kSignMethod)
            c.detail = method_name(r) + " item" + (c.detail ? ", " + *c.detail : std::string());
        std::string after_sha;
        seq = s.store->commit_signature(c, &after_sha);
        store::AuditInput logged;
        logged.uid = c.uid;
        logged.method = c.method;
        logged.record = c.record;
        logged.role = c.role;
        logged.fingerprint = c.fingerprint;
        logged.document_before = c.document_before_sha;
        logged.document_after = after_sha.empty() ? sha256_hex(out) : std::move(after_sha);
        logged.detail = c.detail;
        log_audit(seq, logged);
    } else {
        seq = s.audit_seq.fetch_add(1) + 1;
    }
    // Only a committed signature counts against the session; a refused commit used none.
    ticket.commit();
    s.signatures.fetch_add(1);
    // The session's token, for watchers following a card; in a batch, "n/m" ends the detail
    // (the principal's progress).
    s.publish({"signed", kc.lease.token_uri, std::nullopt, record,
               std::string(dsig::to_string(w.stage)) + " " + w.year +
                   (w.subject ? " " + *w.subject : std::string()) +
                   (progress.empty() ? std::string() : " " + progress)});
    return {{"document", std::move(out)}, {"signature", std::move(signature)}, {"audit_seq", seq}};
}

}  // namespace

json::object sign(Services& s, Request& r) {
    const std::string session = r.params.string("session");
    const What w = read_what(r);
    const std::string document = r.params.string("document");
    const auto request_id = r.params.opt_string("request_id");
    r.params.finish();

    // A retry of a finished request is answered from the stored result even when its
    // session has ended since, so the session is looked at only for a new request.
    std::optional<KeyContext> kc;
    std::optional<std::string> fingerprint;
    try {
        return idempotent(s, r, w, document, request_id, [&](const std::string& digest) {
            kc.emplace(key_context(s, r, session, w, fingerprint));
            return sign_one(s, r, session, w, *kc, document, request_id, digest);
        });
    } catch (const Error& e) {
        // PermissionDenied (another uid's session) leaves through the Dispatcher's refusal
        // hook, which audits it: once is enough.
        if (e.code() != Errc::PermissionDenied)
            audit_refusal(s, r.caller.uid, method_name(r), e,
                          refusal_context(w, document, fingerprint));
        throw;
    }
}

// At most this many items of one SignBatch at once (also bounded by the cores and by
// limits.worker_threads): a batch must not take every core from the other callers.
constexpr std::size_t kMaxBatchLanes = 4;

json::object sign_batch(Services& s, Request& r) {
    const std::string session = r.params.string("session");
    const What w = read_what(r);
    const auto& items_json = r.params.array("items");
    r.params.finish();
    if (items_json.size() > r.config->limits.max_batch_items)
        throw Error::invalid_parameter("items");
    std::vector<protocol::BatchItem> items;
    items.reserve(items_json.size());
    for (const auto& v : items_json) {
        const auto* o = v.if_object();
        const auto* d = o ? o->if_contains("document") : nullptr;
        const auto* id = o ? o->if_contains("request_id") : nullptr;
        if (!d || !d->is_string() || (id && !id->is_null() && !id->is_string()) ||
            o->size() != 1u + (id ? 1u : 0u))
            throw Error::invalid_parameter("items");
        items.push_back(
            {std::string(d->get_string()),
             id && id->is_string() ? std::optional<std::string>(id->get_string()) : std::nullopt});
    }

    // Session, key and trust are the same for every item: a failure there fails the call.
    std::optional<std::string> fingerprint;
    const auto kc = [&] {
        try {
            return key_context(s, r, session, w, fingerprint);
        } catch (const Error& e) {
            store::AuditInput a;
            a.role = std::string(dsig::to_string(w.stage));
            a.fingerprint = fingerprint;
            a.detail = std::to_string(items.size()) + " items";
            if (e.code() != Errc::PermissionDenied)  // audited by the Dispatcher's hook
                audit_refusal(s, r.caller.uid, method_name(r), e, std::move(a));
            throw;
        }
    }();
    // One item, start to end: its result or its error, never an exception.
    auto run_item = [&](std::size_t i) -> json::value {
        protocol::BatchResult br;
        try {
            auto one = idempotent(
                s, r, w, items[i].document, items[i].request_id, [&](const std::string& digest) {
                    return sign_one(s, r, session, w, kc, items[i].document, items[i].request_id,
                                    digest,
                                    std::to_string(i + 1) + "/" + std::to_string(items.size()));
                });
            br.document = std::string(one.at("document").as_string());
            br.signature = json::value_to<protocol::SignatureInfo>(one.at("signature"));
            br.audit_seq = one.at("audit_seq").as_int64();
        } catch (const Error& e) {
            if (e.code() == Errc::Internal)
                log::error("%s item %zu: %s", r.call.method.c_str(), i, e.what());
            auto a = refusal_context(w, items[i].document, kc.key.fingerprint);
            a.detail = "item " + std::to_string(i) + (a.detail ? ", " + *a.detail : "");
            audit_refusal(s, r.caller.uid, method_name(r), e, std::move(a));
            br.error = std::string(error_name(e.code()));
            br.error_parameters = e.parameters();
        } catch (const std::exception& e) {
            auto internal = Error::internal(e.what());
            log::error("%s item %zu: %s", r.call.method.c_str(), i, internal.what());
            br.error = std::string(error_name(internal.code()));
            br.error_parameters = internal.parameters();
        }
        return json::value_from(br);
    };

    // Items are independent, so a batch (a principal's whole school) signs several at once
    // when the machine has the cores: each item is mostly CPU (parse, verify the earlier
    // signatures, serialise) beside its token operation, and the token's session pool takes
    // parallel signatures. Results still leave in item order, from this thread only. Items
    // that share a request_id are kept apart by the RequestGate (the second waits for the
    // first and replays it), as for concurrent Sign calls.
    const std::size_t lanes =
        std::min<std::size_t>({items.size(), std::max(1u, std::thread::hardware_concurrency()),
                               r.config->limits.worker_threads, kMaxBatchLanes});
    std::vector<std::optional<json::value>> done(items.size());
    std::mutex done_mu;
    std::condition_variable done_cv;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stop{false};
    auto take_and_run = [&]() -> bool {
        if (stop.load()) return false;
        const std::size_t i = next.fetch_add(1);
        if (i >= items.size()) return false;
        json::value v = run_item(i);
        {
            std::lock_guard lock(done_mu);
            done[i] = std::move(v);
        }
        done_cv.notify_all();
        return true;
    };
    json::array results;
    std::size_t emitted = 0;
    // Sends (streaming) or keeps every result that is ready, in order.
    auto emit_ready = [&](bool wait) {
        std::unique_lock lock(done_mu);
        for (;;) {
            if (emitted == items.size()) return;
            if (!done[emitted]) {
                if (!wait) return;
                done_cv.wait(lock, [&] { return done[emitted].has_value(); });
            }
            json::value v = std::move(*done[emitted]);
            done[emitted].reset();
            const bool last = ++emitted == items.size();
            lock.unlock();
            // With "more", each result leaves as soon as it is made (one reply per item).
            if (r.stream && !last)
                r.stream(json::object{{"results", json::array{std::move(v)}}});
            else
                results.push_back(std::move(v));
            lock.lock();
        }
    };
    {
        // Helpers stop taking items if this thread leaves early (a stream write failed); they
        // are joined before anything they use goes away.
        struct StopAndJoin {
            std::atomic<bool>& stop;
            std::vector<std::thread>& threads;
            ~StopAndJoin() {
                stop = true;
                for (auto& t : threads) t.join();
            }
        };
        std::vector<std::thread> helpers;
        StopAndJoin guard{stop, helpers};
        for (std::size_t k = 1; k < lanes; ++k)
            helpers.emplace_back([&] {
                while (take_and_run()) {
                }
            });
        while (take_and_run()) emit_ready(false);
        emit_ready(true);
    }
    return {{"results", std::move(results)}};
}

}  // namespace hbsd::daemon::handlers
