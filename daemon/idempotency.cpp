#include "daemon/idempotency.hpp"

#include "protocol/error.hpp"

namespace hbsd::daemon {

std::optional<boost::json::object> MemoryIdempotencyStore::find(uid_t uid,
                                                                std::string_view request_id,
                                                                std::string_view digest) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(Key{uid, std::string(request_id)});
    if (it == entries_.end()) return std::nullopt;
    if (it->second.digest != digest) throw Error::invalid_parameter("request_id");
    return it->second.reply;
}

void MemoryIdempotencyStore::remember(uid_t uid, std::string_view request_id,
                                      std::string_view digest, const boost::json::object& reply) {
    if (capacity_ == 0) return;
    std::lock_guard lock(mu_);
    Key key{uid, std::string(request_id)};
    if (entries_.contains(key)) return;
    while (entries_.size() >= capacity_) {
        entries_.erase(order_.front());
        order_.pop_front();
    }
    order_.push_back(key);
    entries_.emplace(key, Entry{std::string(digest), reply, std::prev(order_.end())});
}

RequestGate::Hold RequestGate::enter(uid_t uid, std::string_view request_id) {
    std::pair<uid_t, std::string> key{uid, std::string(request_id)};
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !held_.contains(key); });
    held_.insert(key);
    return Hold(this, std::move(key));
}

RequestGate::Hold::~Hold() {
    if (!gate_) return;
    {
        std::lock_guard lock(gate_->mu_);
        gate_->held_.erase(key_);
    }
    gate_->cv_.notify_all();
}

}  // namespace hbsd::daemon
