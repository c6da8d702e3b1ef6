// request_id -> the first result of a Sign, per uid.
//
// IdempotencyStore is the seam for the store/ module: today an in-memory bounded map, later a
// SQLite table written in the same transaction as the signature and its audit entry. A request
// is identified by (uid, request_id); `digest` is a hash of what was asked (document, key, role,
// year, subject), so that reusing a request_id for a different request is refused instead of
// returning an unrelated document.
#pragma once

#include <sys/types.h>

#include <boost/json/object.hpp>
#include <condition_variable>
#include <cstddef>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

namespace hbsd::daemon {

class IdempotencyStore {
  public:
    virtual ~IdempotencyStore() = default;
    // The stored reply, nullopt when the request is new. InvalidParameter("request_id") when
    // the id was used for a different request.
    virtual std::optional<boost::json::object> find(uid_t uid, std::string_view request_id,
                                                    std::string_view digest) = 0;
    virtual void remember(uid_t uid, std::string_view request_id, std::string_view digest,
                          const boost::json::object& reply) = 0;
};

// Keeps the `capacity` most recently stored results.
class MemoryIdempotencyStore final : public IdempotencyStore {
  public:
    explicit MemoryIdempotencyStore(std::size_t capacity) : capacity_(capacity) {}
    std::optional<boost::json::object> find(uid_t uid, std::string_view request_id,
                                            std::string_view digest) override;
    void remember(uid_t uid, std::string_view request_id, std::string_view digest,
                  const boost::json::object& reply) override;

  private:
    using Key = std::pair<uid_t, std::string>;
    struct Entry {
        std::string digest;
        boost::json::object reply;
        std::list<Key>::iterator age;
    };
    std::mutex mu_;
    std::size_t capacity_;
    std::map<Key, Entry> entries_;
    std::list<Key> order_;  // oldest first
};

// Serialises requests with the same (uid, request_id): a retry that arrives while the first
// attempt still runs waits for it and then finds its stored result, so nothing is signed twice.
class RequestGate {
  public:
    class Hold {
      public:
        Hold(RequestGate* gate, std::pair<uid_t, std::string> key)
            : gate_(gate), key_(std::move(key)) {}
        Hold(Hold&& o) noexcept : gate_(std::exchange(o.gate_, nullptr)), key_(std::move(o.key_)) {}
        Hold(const Hold&) = delete;
        Hold& operator=(const Hold&) = delete;
        Hold& operator=(Hold&&) = delete;
        ~Hold();

      private:
        RequestGate* gate_;
        std::pair<uid_t, std::string> key_;
    };

    Hold enter(uid_t uid, std::string_view request_id);

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::set<std::pair<uid_t, std::string>> held_;
};

}  // namespace hbsd::daemon
