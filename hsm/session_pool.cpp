#include "hsm/session_pool.hpp"

#include <algorithm>
#include <utility>

#include "protocol/error.hpp"

namespace hbsd::hsm {

SessionPool::SessionPool(unsigned limit) : limit_(std::clamp(limit, 1u, libp11_max_sessions)) {}

SessionPool::Lease::Lease(Lease&& other) noexcept : pool_(std::exchange(other.pool_, nullptr)) {}
SessionPool::Lease& SessionPool::Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        if (pool_) pool_->release();
        pool_ = std::exchange(other.pool_, nullptr);
    }
    return *this;
}
SessionPool::Lease::~Lease() {
    if (pool_) pool_->release();
}

SessionPool::Lease SessionPool::acquire(std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    if (!freed_.wait_for(lock, wait, [this] { return in_use_ < limit_; })) throw Error::busy(1000);
    ++in_use_;
    peak_ = std::max(peak_, in_use_);
    return Lease(this);
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
