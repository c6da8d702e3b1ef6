#include "daemon/pin_cache.hpp"

#include "daemon/log.hpp"
#include "protocol/error.hpp"

#include <sys/mman.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace hbsd::daemon {

LockedPages::LockedPages(std::size_t bytes) : size_(bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        throw Error::internal("mmap for the PIN cache: " + std::string(std::strerror(errno)));
    addr_ = p;
    // A core dump of hbsd must not carry the cached PINs.
    (void)::madvise(addr_, size_, MADV_DONTDUMP);
    // May fail under a small RLIMIT_MEMLOCK; the cache still works, the PINs may then reach swap.
    locked_ = ::mlock(addr_, size_) == 0;
}

LockedPages::LockedPages(LockedPages&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      locked_(std::exchange(other.locked_, false)) {}

LockedPages& LockedPages::operator=(LockedPages&& other) noexcept {
    if (this != &other) {
        release();
        addr_ = std::exchange(other.addr_, nullptr);
        size_ = std::exchange(other.size_, 0);
        locked_ = std::exchange(other.locked_, false);
    }
    return *this;
}

LockedPages::~LockedPages() {
    release();
}

void LockedPages::release() noexcept {
    if (!addr_) return;
    OPENSSL_cleanse(addr_, size_);
    if (locked_) ::munlock(addr_, size_);
    ::munmap(addr_, size_);
    addr_ = nullptr;
}

PinCache::PinCache(const PinCacheConfig& config)
    : enabled_(config.enabled),
      ttl_(config.ttl_s),
      max_entries_(std::max<std::size_t>(config.max_entries, 1)) {
    if (!enabled_) return;
    slots_.emplace(max_entries_ * kMaxPinBytes);
    // An admin reading the journal should see that PINs are being remembered, and for how long.
    log::info("pin_cache: enabled, a PIN is kept %lld s from its entry, at most %zu PINs",
              static_cast<long long>(ttl_.count()), max_entries_);
    if (!slots_->locked())
        log::warning(
            "pin_cache: cannot lock its memory (RLIMIT_MEMLOCK?); cached PINs may reach swap");
    free_.reserve(max_entries_);
    for (std::size_t i = max_entries_; i-- > 0;) free_.push_back(i);
    entries_.reserve(max_entries_);
}

PinCache::~PinCache() {
    // LockedPages wipes every slot anyway; the entries' other fields are no secret.
    clear();
}

void PinCache::forget(std::vector<Entry>::iterator it) noexcept {
    OPENSSL_cleanse(slots_->bytes().data() + it->slot * kMaxPinBytes, kMaxPinBytes);
    free_.push_back(it->slot);
    entries_.erase(it);
}

template <class Pred>
std::size_t PinCache::drop_if(Pred pred) {
    if (!enabled_) return 0;
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (pred(*it)) {
            const auto i = it - entries_.begin();
            forget(it);
            it = entries_.begin() + i;
            ++n;
        } else {
            ++it;
        }
    }
    return n;
}

bool PinCache::remember(uid_t uid, const Token& token, std::string_view requested,
                        std::string_view pin, std::optional<std::uint64_t> reader_events_before,
                        Clock::time_point now) {
    if (!enabled_ || pin.empty() || pin.size() > kMaxPinBytes) return false;
    std::lock_guard lock(mu_);
    // drop_reader counts before it takes mu_, so a removal is either counted here or finds the
    // entry to drop.
    if (token.reader && reader_events_before && *reader_events_before != reader_events_.load())
        return false;
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (it->uid == uid && it->token.uri == token.uri) {
            forget(it);
            break;
        }
    if (free_.empty()) {
        const auto oldest = std::ranges::min_element(entries_, {}, &Entry::typed);
        forget(oldest);
    }
    const std::size_t slot = free_.back();
    free_.pop_back();
    std::memcpy(slots_->bytes().data() + slot * kMaxPinBytes, pin.data(), pin.size());
    entries_.push_back({uid, token, std::string(requested), now, slot, pin.size()});
    return true;
}

std::optional<PinCache::Token> PinCache::find(uid_t uid, std::string_view token, std::string& pin,
                                              Clock::time_point now) {
    if (!enabled_) return std::nullopt;
    std::lock_guard lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->uid != uid || (it->token.uri != token && it->requested != token)) continue;
        if (now - it->typed >= ttl_) {
            forget(it);
            return std::nullopt;
        }
        pin.assign(reinterpret_cast<const char*>(slots_->bytes().data() + it->slot * kMaxPinBytes),
                   it->length);
        return it->token;
    }
    return std::nullopt;
}

std::size_t PinCache::drop(uid_t uid, std::optional<std::string_view> token) {
    return drop_if([&](const Entry& e) {
        return e.uid == uid && (!token || e.token.uri == *token || e.requested == *token);
    });
}

std::size_t PinCache::drop_token(std::string_view uri) {
    return drop_if([&](const Entry& e) { return e.token.uri == uri; });
}

std::size_t PinCache::drop_other_incarnations(std::string_view uri, std::uint64_t current) {
    return drop_if(
        [&](const Entry& e) { return e.token.uri == uri && e.token.incarnation != current; });
}

std::size_t PinCache::drop_incarnation(std::string_view uri, std::uint64_t incarnation) {
    return drop_if(
        [&](const Entry& e) { return e.token.uri == uri && e.token.incarnation == incarnation; });
}

std::size_t PinCache::drop_reader(std::string_view reader) {
    ++reader_events_;
    return drop_if([&](const Entry& e) { return e.token.reader && *e.token.reader == reader; });
}

bool PinCache::holds(uid_t uid, std::string_view uri, std::uint64_t incarnation) {
    if (!enabled_) return false;
    std::lock_guard lock(mu_);
    return std::ranges::any_of(entries_, [&](const Entry& e) {
        return e.uid == uid && e.token.uri == uri && e.token.incarnation == incarnation;
    });
}

std::size_t PinCache::sweep(Clock::time_point now) {
    return drop_if([&](const Entry& e) { return now - e.typed >= ttl_; });
}

void PinCache::clear() {
    drop_if([](const Entry&) { return true; });
}

std::size_t PinCache::size() {
    std::lock_guard lock(mu_);
    return entries_.size();
}

}  // namespace hbsd::daemon
