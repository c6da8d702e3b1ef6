// Sign and SignBatch.
//
// What is checked once per call (session, key, the key's certificate and its trust) is in
// KeyContext; what is done per document (idempotency, order policy, the signature itself) is in
// sign_one, so that a batch item fails alone.
#include "daemon/handlers.hpp"
#include "daemon/handlers_common.hpp"
#include "daemon/log.hpp"
#include "daemon/openssl_handles.hpp"
#include "policies/order.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>

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
// disagree with what a verifier will read from KeyInfo.
hsm::Mechanism mechanism_for(const std::vector<unsigned char>& der) {
    const unsigned char* p = der.data();
    X509Ptr cert{d2i_X509(nullptr, &p, static_cast<long>(der.size()))};
    if (!cert) throw Error::policy("wrong_key", "the certificate beside the key is not valid DER");
    switch (EVP_PKEY_get_base_id(X509_get0_pubkey(cert.get()))) {
        case EVP_PKEY_RSA:
            return hsm::Mechanism::rsa_pkcs1_sha256;
        case EVP_PKEY_EC:
            return hsm::Mechanism::ecdsa_sha256;
        default:
            throw Error::policy("wrong_key", "the certificate's key is neither RSA nor EC");
    }
}

KeyContext key_context(Services& s, Request& r, const std::string& session, const What& w) {
    auto lease = s.sessions.lease(r.caller.uid, session, r.call.method);
    hsm::KeyInfo key = s.tokens->find_key(*lease.login, w.key);
    if (key.certificate_der.empty())
        throw Error::policy("wrong_key", "no certificate is stored beside the key");
    if (auto why = trust_problem(s, key.certificate_der, std::chrono::system_clock::now()))
        throw Error::policy("untrusted_certificate", *why);
    const auto mech = mechanism_for(key.certificate_der);
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

// Runs `make` at most once per (uid, request_id): a retry gets the stored reply, a concurrent
// retry waits for the first attempt. Without a request_id, just runs it.
template <class Make>
json::object idempotent(Services& s, Request& r, const What& w, const std::string& document,
                        const std::optional<std::string>& request_id, Make&& make) {
    if (!request_id) return make();
    if (request_id->empty() || request_id->size() > 256)
        throw Error::invalid_parameter("request_id");
    const std::string digest = request_digest(w, document);
    auto hold = s.requests.enter(r.caller.uid, *request_id);
    if (auto done = s.idempotency->find(r.caller.uid, *request_id, digest)) return *done;
    json::object reply = make();
    s.idempotency->remember(r.caller.uid, *request_id, digest, reply);
    return reply;
}

json::object sign_one(Services& s, Request& r, const std::string& session, const What& w,
                      const KeyContext& kc, const std::string& document) {
    auto ticket = s.sessions.reserve_signature(r.caller.uid, session, r.call.method);
    const auto& limits = s.config.limits;
    auto doc = dsig::Document::parse(
        document, dsig::Limits{limits.max_document_bytes, static_cast<int>(limits.max_depth)});
    std::optional<std::string_view> subject;
    if (w.subject) subject = *w.subject;
    policies::check_order(doc, w.stage, w.year, subject);

    dsig::Signer signer{kc.key.certificate_der, [&](std::span<const unsigned char> md) {
                            try {
                                return s.tokens->sign(*kc.lease.login, kc.key.uri, kc.mechanism,
                                                      md);
                            } catch (const Error& e) {
                                if (e.code() == Errc::TokenNotPresent)
                                    s.sessions.end_token(kc.lease.token_uri);
                                throw;
                            }
                        }};
    const auto report =
        doc.add_signature(w.stage, w.year, subject, signer, std::chrono::system_clock::now());
    std::string out = doc.serialize();
    ticket.commit();
    s.signatures.fetch_add(1);
    const std::int64_t seq = s.audit_seq.fetch_add(1) + 1;
    return {{"document", std::move(out)},
            {"signature", json::value_from(to_wire(report, s, std::chrono::system_clock::now()))},
            {"audit_seq", seq}};
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
    return idempotent(s, r, w, document, request_id, [&] {
        const auto kc = key_context(s, r, session, w);
        return sign_one(s, r, session, w, kc, document);
    });
}

json::object sign_batch(Services& s, Request& r) {
    const std::string session = r.params.string("session");
    const What w = read_what(r);
    const auto& items_json = r.params.array("items");
    r.params.finish();
    if (items_json.size() > s.config.limits.max_batch_items)
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
    const auto kc = key_context(s, r, session, w);
    json::array results;
    for (std::size_t i = 0; i < items.size(); ++i) {
        protocol::BatchResult br;
        try {
            auto one = idempotent(s, r, w, items[i].document, items[i].request_id, [&] {
                return sign_one(s, r, session, w, kc, items[i].document);
            });
            br.document = std::string(one.at("document").as_string());
            br.signature = json::value_to<protocol::SignatureInfo>(one.at("signature"));
            br.audit_seq = one.at("audit_seq").as_int64();
        } catch (const Error& e) {
            if (e.code() == Errc::Internal)
                log::error("%s item %zu: %s", r.call.method.c_str(), i, e.what());
            br.error = std::string(error_name(e.code()));
            br.error_parameters = e.parameters();
        } catch (const std::exception& e) {
            auto internal = Error::internal(e.what());
            log::error("%s item %zu: %s", r.call.method.c_str(), i, internal.what());
            br.error = std::string(error_name(internal.code()));
            br.error_parameters = internal.parameters();
        }
        json::value v = json::value_from(br);
        // With "more", each result leaves as soon as it is made (one reply per item).
        if (r.stream && i + 1 < items.size())
            r.stream(json::object{{"results", json::array{std::move(v)}}});
        else
            results.push_back(std::move(v));
    }
    return {{"results", std::move(results)}};
}

}  // namespace hbsd::daemon::handlers
