#include "hsm/session_pool.hpp"

#include <algorithm>
#include <utility>

#include "protocol/error.hpp"

namespace hbsd::hsm {

SessionPool::SessionPool(unsigned limit) : limit_(std::clamp(limit, 1u, libp11_max_sessions)) {}

SessionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      level_(other.level_),
      needs_probe_(other.needs_probe_) {}
SessionPool::Lease& SessionPool::Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        if (pool_) pool_->release();
        pool_ = std::exchange(other.pool_, nullptr);
        level_ = other.level_;
        needs_probe_ = other.needs_probe_;
    }
    return *this;
}
SessionPool::Lease::~Lease() {
    if (pool_) pool_->release();
}

void SessionPool::Lease::probed() noexcept {
    if (pool_) pool_->mark_opened(level_);
    needs_probe_ = false;
}

SessionPool::Lease SessionPool::acquire(std::uint64_t generation, std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    if (!freed_.wait_for(lock, wait, [this] { return in_use_ < limit_; })) throw Error::busy(1000);
    if (generation != generation_) {
        generation_ = generation;
        opened_ = 0;
    }
    ++in_use_;
    peak_ = std::max(peak_, in_use_);
    return Lease(this, in_use_, in_use_ > opened_);
}

void SessionPool::mark_opened(unsigned level) noexcept {
    std::lock_guard lock(mutex_);
    opened_ = std::max(opened_, level);
}

void SessionPool::release() noexcept {
    {
        std::lock_guard lock(mutex_);
        --in_use_;
    }
    freed_.notify_one();
}

unsigned SessionPool::in_use() const {
    std::lock_guard lock(mutex_);
    return in_use_;
}

unsigned SessionPool::peak() const {
    std::lock_guard lock(mutex_);
    return peak_;
}

}  // namespace hbsd::hsm
