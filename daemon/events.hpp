// The event bus behind WatchEvents: token_inserted/removed, session_opened/closed/expired,
// signed, record_changed, certificate_changed (the contract's Event kinds).
//
// publish() never blocks on a watcher: it appends to each subscriber's bounded queue under a
// short mutex and returns, so a signature never waits for a slow (or stuck) reader. A watcher
// that falls behind loses its OLDEST events (the queue keeps the newest `capacity`), and the
// next event it does receive carries how many were lost (Subscription::take returns the
// count; the connection logs it), so a front-end that must not miss a change re-reads
// ListTokens after reconnecting rather than trusting a gap-free history.
// Disconnecting instead would make a watcher on a slow link reconnect and lose the same
// events anyway, with a reconnect storm on top.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "daemon/event_hook.hpp"

namespace hbsd::daemon {

// An Event (event_hook.hpp, what publishers fill) with the time it was published.
struct TimedEvent {
    std::chrono::system_clock::time_point time;
    Event event;
};

// The contract's Event as JSON ({"time":..., "kind":..., optional fields only when set}).
boost::json::object to_json(const TimedEvent& event);

class EventBus;

// One watcher's queue. Thread-safe; the bus holds it weakly, so dropping the last shared_ptr
// unsubscribes.
class Subscription {
  public:
    Subscription(std::size_t capacity, std::function<void()> notify)
        : capacity_(capacity), notify_(std::move(notify)) {}

    // The queued events (oldest first) and how many were dropped since the last take.
    std::vector<TimedEvent> take(std::size_t max, std::uint64_t& dropped);
    // Waits up to `timeout` for an event; for watchers that block a thread (tests).
    std::optional<TimedEvent> next(std::chrono::milliseconds timeout);
    // Ends the subscription: publish skips it from now on.
    void close() noexcept;
    bool closed() const;

  private:
    friend class EventBus;
    void push(const TimedEvent& event);

    const std::size_t capacity_;
    const std::function<void()> notify_;  // called (outside the lock) after a push
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<TimedEvent> queue_;
    std::uint64_t dropped_ = 0;
    bool closed_ = false;
};

class EventBus {
  public:
    explicit EventBus(std::size_t capacity = 1024) : capacity_(capacity) {}

    // `notify` runs on the publishing thread after each event is queued (must be cheap and
    // non-blocking, e.g. an asio::post).
    std::shared_ptr<Subscription> subscribe(std::function<void()> notify = {});
    // Stamps the time and queues the event for every watcher. Never blocks on a watcher and
    // never throws (Services::on_event calls it).
    void publish(const Event& event) noexcept;
    std::size_t watchers();

  private:
    const std::size_t capacity_;
    std::mutex mu_;
    std::vector<std::weak_ptr<Subscription>> subs_;
};

}  // namespace hbsd::daemon
