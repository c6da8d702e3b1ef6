#include "protocol/frame.hpp"

namespace hbsd::protocol {

FrameDecoder::Status FrameDecoder::feed(std::string_view bytes) {
    if (too_large_) return Status::too_large;
    while (!bytes.empty()) {
        const auto nul = bytes.find('\0');
        const auto part = bytes.substr(0, nul == std::string_view::npos ? bytes.size() : nul);
        // Checked before appending, and written so that it cannot overflow.
        if (part.size() > max_ - partial_.size()) {
            too_large_ = true;
            refused_size_ = partial_.size() + part.size();
            std::string().swap(partial_);  // give the memory back now, not at close
            return Status::too_large;
        }
        partial_.append(part);
        if (nul == std::string_view::npos) break;
        frames_.push_back(std::move(partial_));
        partial_.clear();
        bytes.remove_prefix(nul + 1);
    }
    return Status::ok;
}

std::optional<std::string> FrameDecoder::next() {
    if (frames_.empty()) return std::nullopt;
    std::string f = std::move(frames_.front());
    frames_.pop_front();
    return f;
}

std::string encode_frame(std::string_view json) {
    std::string out;
    out.reserve(json.size() + 1);
    out.append(json);
    out.push_back('\0');
    return out;
}

}  // namespace hbsd::protocol
