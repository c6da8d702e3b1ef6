// Varlink framing: every message is one JSON object followed by a single NUL byte.
//
// The decoder is fed whatever a read() returned and hands out complete frames. It never holds
// more than `max_frame_bytes` of an unfinished frame: the moment the frame being assembled
// passes the limit it stops storing bytes and reports too_large, so a peer that never sends a
// NUL cannot make the daemon allocate without bound.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace hbsd::protocol {

class FrameDecoder {
  public:
    enum class Status { ok, too_large };

    explicit FrameDecoder(std::size_t max_frame_bytes) noexcept : max_(max_frame_bytes) {}

    // Appends bytes. Once too_large has been reported the decoder stays in that state and
    // ignores further input: the stream can no longer be trusted to be in sync.
    Status feed(std::string_view bytes);
    // The next complete frame (without its NUL), in arrival order.
    std::optional<std::string> next();

    bool has_frame() const noexcept { return !frames_.empty(); }
    bool too_large() const noexcept { return too_large_; }
    // Size the oversized frame had reached when it was refused (> limit).
    std::size_t refused_size() const noexcept { return refused_size_; }
    // Bytes of the frame still being assembled.
    std::size_t partial_bytes() const noexcept { return partial_.size(); }
    std::size_t limit() const noexcept { return max_; }

  private:
    std::size_t max_;
    std::string partial_;
    std::deque<std::string> frames_;
    bool too_large_ = false;
    std::size_t refused_size_ = 0;
};

// `json` followed by the NUL terminator. `json` must not contain a NUL itself (serialised JSON
// never does: NUL inside strings is escaped as \u0000).
std::string encode_frame(std::string_view json);

}  // namespace hbsd::protocol
