#include "daemon/events.hpp"

#include "daemon/handlers_common.hpp"

#include <algorithm>

namespace hbsd::daemon {

boost::json::object to_json(const TimedEvent& t) {
    const Event& e = t.event;
    boost::json::object o{{"time", rfc3339(t.time)}, {"kind", e.kind}};
    if (e.token) o["token"] = *e.token;
    if (e.reader) o["reader"] = *e.reader;
    if (e.record) o["record"] = *e.record;
    if (e.detail) o["detail"] = *e.detail;
    return o;
}

void Subscription::push(const TimedEvent& event) {
    {
        std::lock_guard lock(mu_);
        if (closed_) return;
        if (queue_.size() >= capacity_) {
            queue_.pop_front();
            ++dropped_;
        }
        queue_.push_back(event);
    }
    cv_.notify_one();
    if (notify_) notify_();
}

std::vector<TimedEvent> Subscription::take(std::size_t max, std::uint64_t& dropped) {
    std::lock_guard lock(mu_);
    const std::size_t n = std::min(max, queue_.size());
    std::vector<TimedEvent> out(std::make_move_iterator(queue_.begin()),
                                std::make_move_iterator(queue_.begin() + static_cast<long>(n)));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<long>(n));
    dropped = std::exchange(dropped_, 0);
    return out;
}

std::optional<TimedEvent> Subscription::next(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || closed_; })) return {};
    if (queue_.empty()) return {};
    TimedEvent e = std::move(queue_.front());
    queue_.pop_front();
    return e;
}

void Subscription::close() noexcept {
    {
        std::lock_guard lock(mu_);
        closed_ = true;
        queue_.clear();
    }
    cv_.notify_all();
}

bool Subscription::closed() const {
    std::lock_guard lock(mu_);
    return closed_;
}

std::shared_ptr<Subscription> EventBus::subscribe(std::function<void()> notify) {
    auto sub = std::make_shared<Subscription>(capacity_, std::move(notify));
    std::lock_guard lock(mu_);
    std::erase_if(subs_, [](const auto& w) { return w.expired(); });
    subs_.push_back(sub);
    return sub;
}

void EventBus::publish(const Event& event) noexcept {
    try {
        const TimedEvent timed{std::chrono::system_clock::now(), event};
        std::vector<std::shared_ptr<Subscription>> live;
        {
            std::lock_guard lock(mu_);
            for (auto it = subs_.begin(); it != subs_.end();) {
                if (auto s = it->lock()) {
                    live.push_back(std::move(s));
                    ++it;
                } else {
                    it = subs_.erase(it);
                }
            }
        }
        // Outside the bus lock: a watcher's notify posts to the I/O thread.
        for (auto& s : live) s->push(timed);
    } catch (...) {
        // Out of memory: the event is lost, the change it announces is not.
    }
}

std::size_t EventBus::watchers() {
    std::lock_guard lock(mu_);
    std::erase_if(subs_, [](const auto& w) { return w.expired(); });
    return subs_.size();
}

}  // namespace hbsd::daemon
