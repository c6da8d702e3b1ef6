#include "daemon/sessions.hpp"

#include "daemon/openssl_handles.hpp"
#include "protocol/error.hpp"
#include "protocol/hex.hpp"

#include <openssl/rand.h>

#include <array>

namespace hbsd::daemon {

std::string random_hex_128() {
    std::array<unsigned char, 16> r{};
    if (RAND_bytes(r.data(), static_cast<int>(r.size())) != 1)
        throw Error::internal("RAND_bytes failed");
    return to_hex(r);
}

SessionTable::Opened SessionTable::open(uid_t uid, hsm::Login login, std::chrono::seconds ttl,
                                        std::optional<std::int64_t> max_signatures) {
    Session s{uid, login.token_uri(), std::make_shared<const hsm::Login>(std::move(login)),
              Clock::now() + ttl, max_signatures};
    std::string id = random_hex_128();
    const auto wall = std::chrono::system_clock::now() + ttl;
    std::lock_guard lock(mu_);
    sessions_.emplace(id, std::move(s));
    count_ = sessions_.size();
    return {std::move(id), wall};
}

SessionTable::Session& SessionTable::live(std::unique_lock<std::mutex>&, uid_t uid,
                                          std::string_view id, std::string_view method,
                                          bool for_signature) {
    sweep_locked(Clock::now());
    const std::string key(id);
    if (auto it = sessions_.find(key); it != sessions_.end()) {
        if (it->second.uid != uid) throw Error::permission_denied(uid, method);
        return it->second;
    }
    if (auto t = tombstones_.find(key); t != tombstones_.end()) {
        if (t->second.uid != uid) throw Error::permission_denied(uid, method);
        if (for_signature && t->second.token_removed)
            throw Error::token_not_present(t->second.token_uri);
        throw Error::session_expired(id);
    }
    throw Error::session_not_found(id);
}

SessionTable::Lease SessionTable::lease(uid_t uid, std::string_view id, std::string_view method) {
    std::unique_lock lock(mu_);
    auto& s = live(lock, uid, id, method);
    return {std::string(id), s.token_uri, s.login};
}

SessionTable::Ticket SessionTable::reserve_signature(uid_t uid, std::string_view id,
                                                     std::string_view method) {
    std::unique_lock lock(mu_);
    auto& s = live(lock, uid, id, method, true);
    if (s.max_signatures && s.completed + s.reserved >= *s.max_signatures)
        // Every allowed signature is made or being made: for this caller the session is over.
        throw Error::session_expired(id);
    ++s.reserved;
    return Ticket(*this, Lease{std::string(id), s.token_uri, s.login});
}

void SessionTable::unreserve(const std::string& id, bool committed) noexcept {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    --it->second.reserved;
    if (committed) ++it->second.completed;
    if (it->second.max_signatures && it->second.completed >= *it->second.max_signatures)
        end(it, "max_signatures");
}

SessionTable::Ticket::~Ticket() {
    if (table_) table_->unreserve(lease_.session, false);
}

void SessionTable::Ticket::commit() noexcept {
    if (auto* t = std::exchange(table_, nullptr)) t->unreserve(lease_.session, true);
}

void SessionTable::close(uid_t uid, std::string_view id, std::string_view method) {
    std::unique_lock lock(mu_);
    live(lock, uid, id, method);
    // Closed on request: afterwards the id is simply unknown.
    sessions_.erase(std::string(id));
    count_ = sessions_.size();
}

void SessionTable::end(std::unordered_map<std::string, Session>::iterator it,
                       std::string_view reason) {
    if (on_end_) {
        try {
            on_end_(it->second.token_uri, reason);
        } catch (...) {
            // A listener's failure must not keep a session alive.
        }
    }
    tombstones_.emplace(it->first,
                        Tombstone{it->second.uid, it->second.token_uri, reason == "token_removed"});
    tombstone_order_.push_back(it->first);
    while (tombstone_order_.size() > max_tombstones_) {
        tombstones_.erase(tombstone_order_.front());
        tombstone_order_.pop_front();
    }
    sessions_.erase(it);
    count_ = sessions_.size();
}

void SessionTable::end_token(std::string_view token_uri, std::optional<std::uint64_t> keep) {
    std::lock_guard lock(mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
        auto next = std::next(it);
        if (it->second.token_uri == token_uri &&
            (!keep || it->second.login->incarnation() != *keep))
            end(it, "token_removed");
        it = next;
    }
}

void SessionTable::sweep_locked(Clock::time_point now) {
    for (auto it = sessions_.begin(); it != sessions_.end();) {
        auto next = std::next(it);
        if (it->second.expires <= now) end(it, "ttl");
        it = next;
    }
}

void SessionTable::sweep() {
    std::lock_guard lock(mu_);
    sweep_locked(Clock::now());
}

std::size_t SessionTable::active() {
    std::lock_guard lock(mu_);
    sweep_locked(Clock::now());
    return sessions_.size();
}

}  // namespace hbsd::daemon
